// Unit tests of the service map's layered layout (node --test tests/web/).
import { test } from "node:test";
import assert from "node:assert/strict";
import { backEdges, assignLayers, countCrossings, orderLayers, layoutGraph } from "../../web/lib/graph_layout.mjs";

const edge = (from, to) => ({ from, to });
const byId = (layout) => new Map(layout.nodes.map((node) => [node.id, node]));

test("a node's layer is the longest path to it from a root", () => {
  const ids = ["frontend", "checkout", "payment", "inventory"];
  const edges = [edge("frontend", "checkout"), edge("checkout", "payment"), edge("frontend", "payment"), edge("checkout", "inventory")];
  const layers = assignLayers(ids, edges);
  assert.deepEqual(Object.fromEntries(layers), { frontend: 0, checkout: 1, payment: 2, inventory: 2 });
});

test("cycles are broken without hanging and every node gets a layer", () => {
  const ids = ["a", "b", "c"];
  const edges = [edge("a", "b"), edge("b", "c"), edge("c", "a"), edge("b", "b")];
  const back = backEdges(ids, edges);
  assert.equal(back.size, 1);
  const layers = assignLayers(ids, edges, back);
  assert.deepEqual([...layers.keys()].sort(), ids);
  for (const [index, e] of edges.entries()) {
    if (e.from === e.to || back.has(index)) continue;
    assert.ok(layers.get(e.from) < layers.get(e.to), `${e.from} → ${e.to} goes right`);
  }
});

test("a cycle with no root at all still lays out", () => {
  const layout = layoutGraph([], [edge("x", "y"), edge("y", "x")]);
  const nodes = byId(layout);
  assert.equal(nodes.size, 2);
  assert.deepEqual(layout.edges.map((e) => e.kind).sort(), ["back", "forward"]);
  assert.notEqual(nodes.get("x").layer, nodes.get("y").layer);
});

test("barycenter ordering removes avoidable crossings", () => {
  const pairs = [["a", "d"], ["b", "c"]];
  const layers = [["a", "b"], ["c", "d"]];
  assert.equal(countCrossings(layers, pairs), 1);
  const ordered = orderLayers(layers, pairs);
  assert.equal(countCrossings(ordered, pairs), 0);
});

test("nodes do not overlap and callers sit left of callees", () => {
  const edges = [edge("fe", "api"), edge("fe", "auth"), edge("api", "db"), edge("auth", "db"), edge("api", "cache")];
  const layout = layoutGraph(["lonely"], edges, { nodeWidth: (id) => 40 + id.length * 8 });
  const nodes = byId(layout);
  assert.equal(nodes.size, 6);
  for (const e of edges) assert.ok(nodes.get(e.from).x + nodes.get(e.from).width < nodes.get(e.to).x);
  const list = [...nodes.values()];
  for (const a of list) {
    assert.ok(a.x >= 0 && a.y >= 0 && a.x + a.width <= layout.width && a.y + a.height <= layout.height, `${a.id} inside`);
    for (const b of list) {
      if (a === b) continue;
      const apart = a.x + a.width <= b.x || b.x + b.width <= a.x || a.y + a.height <= b.y || b.y + b.height <= a.y;
      assert.ok(apart, `${a.id} and ${b.id} overlap`);
    }
  }
});

test("edges keep their order and get paths and label positions inside the drawing", () => {
  const edges = [edge("a", "b"), edge("b", "a"), edge("a", "a")];
  const layout = layoutGraph(["a", "b"], edges);
  assert.deepEqual(layout.edges.map((e) => [e.from, e.to, e.kind]), [["a", "b", "forward"], ["b", "a", "back"], ["a", "a", "self"]]);
  for (const e of layout.edges) {
    assert.match(e.path, /^M-?[\d.]+ -?[\d.]+ C/);
    assert.ok(e.labelY >= 0 && e.labelY <= layout.height, `${e.kind} label inside`);
  }
  const a = byId(layout).get("a");
  assert.ok(a.y > 20, "room above for the self-loop");
});

test("the layout is deterministic and empty graphs are empty", () => {
  const edges = [edge("c", "a"), edge("c", "b")];
  assert.deepEqual(layoutGraph([], edges), layoutGraph([], [...edges]));
  assert.deepEqual(layoutGraph([], []), { width: 0, height: 0, nodes: [], edges: [] });
});

test("an edge skipping a layer runs through a free lane, clear of the nodes there", () => {
  const edges = [edge("fe", "api"), edge("api", "db"), edge("fe", "db"), edge("fe", "auth"), edge("auth", "db")];
  const layout = layoutGraph([], edges);
  const nodes = byId(layout);
  const long = layout.edges[2];
  const lane = /L(-?[\d.]+) (-?[\d.]+)/.exec(long.path);
  assert.ok(lane, "the long edge has a straight run through the middle column");
  const y = Number(lane[2]);
  for (const id of ["api", "auth"]) {
    const node = nodes.get(id);
    assert.ok(y < node.y || y > node.y + node.height, `lane clear of ${id}`);
  }
  assert.equal(layout.nodes.length, 4, "lanes are not nodes");
});

test("in a cycle with no root, the node calling out most goes first", () => {
  const edges = [edge("checkout", "frontend"), edge("frontend", "checkout"), edge("frontend", "db"), edge("frontend", "cache")];
  const nodes = byId(layoutGraph([], edges));
  assert.equal(nodes.get("frontend").layer, 0);
  assert.equal(nodes.get("checkout").layer, 1);
});
