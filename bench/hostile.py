"""Hostile and broken clients against a release binary with default settings (512 MiB budget):
peak resident memory of the server under each attack, whether ordinary exports still get
through during it, and how long shutdown takes with requests left half-sent.

    python3 bench/hostile.py [--binary target/release/skewer] [--baseline OTHER_BINARY]

Attacks (each on a fresh server):
- `amplified`: four 16 MiB protobuf exports at once, each one valid span followed by ~8.4M
  empty attributes (`4a 00`): decoded without bounds, ~470 MB each;
- `amplified-small`: sixteen 4 MiB such exports at once (~120 MB each decoded), which a
  decoded-size estimate admits one or two at a time;
- `slow-uploads`: 120 connections declaring 5 MiB bodies and sending a byte a second;
- `slow-headers`: 500 connections sending their request headers a byte a second;
- `stalled-grpc`: 2 gRPC connections × 50 streams, each declaring a 16 MiB message, sending
  300 kB of it and then nothing (raw HTTP/2 frames);
- `shutdown`: SIGTERM with 50 requests half-sent; seconds until the process exits.
"""

import argparse
import socket
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from promql import length_delimited  # noqa: E402
from run import ROOT, Server  # noqa: E402


def rss_mib(pid):
    """(VmRSS, VmHWM) of `pid`, MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def field(number, payload):
    return length_delimited(number, payload)


def amplified_export(total_bytes, trace_byte):
    """An ExportTraceServiceRequest of about `total_bytes`: one span with empty attributes."""
    span = field(1, bytes([trace_byte]) * 16) + field(2, b"\x01" * 8) + field(5, b"amplified")
    span += bytes([0x39]) + (1_700_000_000_000_000_000).to_bytes(8, "little")  # start, fixed64
    span += bytes([0x41]) + (1_700_000_000_100_000_000).to_bytes(8, "little")  # end
    span += b"\x4a\x00" * ((total_bytes - len(span) - 32) // 2)
    return field(1, field(2, field(2, span)))


def post(server, path, body, content_type="application/x-protobuf", timeout=120):
    request = urllib.request.Request(f"http://127.0.0.1:{server.otlp_http}{path}", data=body,
                                     headers={"content-type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError as err:
        return f"error: {err}"


def ordinary_export(server, n):
    """One ordinary export: a valid span, JSON over HTTP."""
    trace = f"{n:032x}"
    body = ('{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"%s","spanId":"00000000000000%02x",'
            '"name":"ordinary","startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000100000000"}]}]}]}'
            % (trace, n % 256)).encode()
    return post(server, "/v1/traces", body, "application/json", timeout=30)


def sample_peak(server, stop, peak):
    while not stop.is_set():
        try:
            peak[0] = max(peak[0], rss_mib(server.proc.pid)[1])
        except OSError:
            return
        time.sleep(0.05)


def attack(binary, work, name, run):
    """Runs `run(server)` on a fresh server; returns the figures."""
    server = Server(binary, work / name).start()
    try:
        rss_before, _ = rss_mib(server.proc.pid)
        figures = run(server)
        figures["rss_before_mib"] = rss_before
        figures["peak_rss_mib"] = rss_mib(server.proc.pid)[1]
        return figures
    finally:
        server.stop()


def concurrent_posts(server, bodies):
    results = [None] * len(bodies)

    def send(i):
        results[i] = post(server, "/v1/traces", bodies[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    ordinary = [ordinary_export(server, 1000 + n) for n in range(5)]
    for t in threads:
        t.join()
    return {"answers": sorted(map(str, results)), "ordinary_during": ordinary}


def amplified(server, count, size):
    return concurrent_posts(server, [amplified_export(size, i + 1) for i in range(count)])


# The attacker's address: every 127/8 address reaches the server's 127.0.0.1, each counted as
# its own client (the ordinary exports come from 127.0.0.1).
ATTACKER = ("127.0.0.2", 0)


def slow(server, connections, first_bytes, seconds=12):
    """`connections` sockets that send `first_bytes` then a byte a second; ordinary exports
    meanwhile; how many the server closed."""
    socks = []
    for _ in range(connections):
        s = socket.create_connection(("127.0.0.1", server.otlp_http), source_address=ATTACKER)
        s.sendall(first_bytes)
        s.setblocking(False)
        socks.append(s)
    ordinary, closed = [], set()
    for second in range(seconds):
        for i, s in enumerate(socks):
            if i in closed:
                continue
            try:
                s.recv(4096)  # an answer (408) or the end: the server let go of it
                closed.add(i)
                continue
            except BlockingIOError:
                pass
            except OSError:
                closed.add(i)
                continue
            try:
                s.send(b"x")
            except OSError:
                closed.add(i)
        if second in (1, 3):
            ordinary.append(ordinary_export(server, 2000 + second))
        time.sleep(1)
    for s in socks:
        s.close()
    return {"ordinary_during": ordinary, "closed_by_server": len(closed), "connections": connections}


def budget_used_mib(server):
    """The server's memory budget in use, MiB, from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("skewer_memory_budget_used_bytes "):
                return round(float(line.split()[1]) / (1 << 20), 1)
    return None


def h2_frame(kind, flags, stream, payload):
    """One HTTP/2 frame."""
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def hpack_literal(name, value):
    """A header as an HPACK literal without indexing, new name, no Huffman coding (short ones)."""
    return bytes([0x00, len(name)]) + name + bytes([len(value)]) + value


def stalled_grpc(server, connections=2, streams=50, sent=300_000, seconds=12):
    """Streams that declare a 16 MiB gRPC message, send `sent` bytes of it and stall; ordinary
    exports meanwhile; how many connections the server ended."""
    socks = []
    headers = b"".join(hpack_literal(name, value) for name, value in [
        (b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"127.0.0.1"),
        (b":path", b"/opentelemetry.proto.collector.trace.v1.TraceService/Export"),
        (b"content-type", b"application/grpc"), (b"te", b"trailers")])
    message = b"\x00" + (16 << 20).to_bytes(4, "big") + b"\x0a" * sent
    for _ in range(connections):
        s = socket.create_connection(("127.0.0.1", server.grpc), source_address=ATTACKER)
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(4, 0, 0, b""))
        time.sleep(0.3)  # the server's SETTINGS and window updates (4 MiB streams, 16 MiB in all)
        s.sendall(h2_frame(4, 1, 0, b""))  # SETTINGS ACK
        for n in range(streams):
            stream = 2 * n + 1
            s.sendall(h2_frame(1, 4, stream, headers))  # HEADERS, END_HEADERS
            for start in range(0, len(message), 16_384):
                s.sendall(h2_frame(0, 0, stream, message[start:start + 16_384]))
        s.setblocking(False)
        socks.append(s)
    ordinary, budget_used = [], None
    for second in range(seconds):
        for s in socks:
            try:
                s.recv(65536)  # window updates, answers: read so the server is never blocked
            except (BlockingIOError, OSError):
                pass
        if second in (1, 3):
            ordinary.append(ordinary_export(server, 3000 + second))
        if second == 2:
            budget_used = budget_used_mib(server)
        time.sleep(1)
    for s in socks:
        s.close()
    return {"ordinary_during": ordinary, "budget_used_mib": budget_used, "streams": connections * streams}


def shutdown_seconds(binary, work):
    server = Server(binary, work / "shutdown").start()
    socks = []
    for _ in range(50):
        s = socket.create_connection(("127.0.0.1", server.otlp_http))
        s.sendall(b"POST /v1/traces HTTP/1.1\r\nhost: s\r\ncontent-type: application/x-protobuf\r\n"
                  b"content-length: 1000000\r\n\r\n\x0a")
        socks.append(s)
    started = time.time()
    server.proc.send_signal(15)
    try:
        server.proc.wait(timeout=120)
    except Exception:
        server.proc.kill()
    took = time.time() - started
    for s in socks:
        s.close()
    return took


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", default=str(ROOT / "target/release/skewer"))
    parser.add_argument("--baseline", help="another binary to run the same attacks against")
    args = parser.parse_args()
    binaries = [("candidate", args.binary)] + ([("baseline", args.baseline)] if args.baseline else [])
    for label, binary in binaries:
        with tempfile.TemporaryDirectory(prefix="skewer-hostile-") as tmp:
            work = Path(tmp)
            print(f"== {label}: {binary}")
            for name, run in [
                ("amplified", lambda s: amplified(s, 4, 16 << 20)),
                ("amplified-small", lambda s: amplified(s, 16, 4 << 20)),
                ("slow-uploads", lambda s: slow(s, 120, b"POST /v1/traces HTTP/1.1\r\nhost: s\r\n"
                                                     b"content-type: application/x-protobuf\r\n"
                                                     b"content-length: 5242880\r\n\r\n\x0a")),
                ("slow-headers", lambda s: slow(s, 500, b"POST /v1/traces HTTP/1.1\r\n")),
                ("stalled-grpc", stalled_grpc),
            ]:
                figures = attack(binary, work, name, run)
                print(f"{name}: peak RSS {figures['peak_rss_mib']:.0f} MiB "
                      f"(at rest {figures['rss_before_mib']:.0f} MiB); {figures}", flush=True)
            print(f"shutdown with 50 half-sent requests: {shutdown_seconds(binary, work):.1f} s", flush=True)


if __name__ == "__main__":
    main()
