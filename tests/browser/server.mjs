// Starts the real `skewer serve` on free loopback ports with a temporary data directory,
// and runs its load generator against it.
import { spawn, execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";

/** The binary under test: `SKEWER_BIN`, else the debug build. */
export const BINARY = resolve(process.env.SKEWER_BIN || join(process.env.CARGO_TARGET_DIR || "target", "debug", "skewer"));

function freePort() {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function eventually(check, { timeoutMs = 30_000, what = "condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((done) => setTimeout(done, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

/** A running server (with `extraArgs` after `serve`): `{ base, otlpHttp, otlpGrpc, loadgen(args), stop() }`. */
export async function startServer(extraArgs = []) {
  const dataDir = await mkdtemp(join(tmpdir(), "skewer-ui-"));
  const [grpc, otlpHttp, http] = [await freePort(), await freePort(), await freePort()];
  const child = spawn(BINARY, [
    "serve", "--data-dir", dataDir,
    "--otlp-grpc-addr", `127.0.0.1:${grpc}`,
    "--otlp-http-addr", `127.0.0.1:${otlpHttp}`,
    "--http-addr", `127.0.0.1:${http}`,
    ...extraArgs,
  ], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, SKEWER_LOG: "warn" } });
  let log = "";
  child.stderr.on("data", (chunk) => { log += chunk; });
  const base = `http://127.0.0.1:${http}`;
  await eventually(async () => (await fetch(`${base}/readyz`)).ok, { what: `skewer to be ready (log: ${log})` });
  return {
    base,
    otlpHttp: `http://127.0.0.1:${otlpHttp}`,
    /** Runs `skewer loadgen` against this server; resolves to its standard output. */
    async loadgen(args) {
      const { stdout } = await promisify(execFile)(BINARY, [
        "loadgen", "--otlp-grpc-addr", `127.0.0.1:${grpc}`, "--otlp-http-addr", `127.0.0.1:${otlpHttp}`,
        "--query-url", base, ...args,
      ], { timeout: 120_000 });
      return stdout;
    },
    log: () => log,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((done) => (child.exitCode !== null ? done() : child.once("exit", done)));
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** GETs JSON from the server. */
export async function getJson(base, path) {
  const response = await fetch(`${base}${path}`);
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
}
