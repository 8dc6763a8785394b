// Layered left-to-right layout of a directed graph (the service map): callers left of their
// callees, each node's layer the longest path to it from a root, cycles broken by setting
// aside the edges that close them, long edges given a lane through the columns they cross,
// the order in each layer chosen by barycenter sweeps to reduce crossings. Pure: no DOM, so
// it is unit-tested under node.

/**
 * The edges of `edges` (`[{from, to}]`) that close a cycle, as a Set of their indexes: a
 * depth-first walk from the roots, then from the nodes calling out most for how much they are
 * called, marks an edge to a node still on the walk's path. Self-loops are not counted here.
 */
export function backEdges(ids, edges) {
  const out = new Map(ids.map((id) => [id, []]));
  const balance = new Map(ids.map((id) => [id, 0])); // incoming − outgoing
  edges.forEach((edge, index) => {
    if (edge.from === edge.to) return;
    out.get(edge.from).push(index);
    balance.set(edge.from, balance.get(edge.from) - 1);
    balance.set(edge.to, balance.get(edge.to) + 1);
  });
  const hasIncoming = new Set(edges.filter((e) => e.from !== e.to).map((e) => e.to));
  const state = new Map(); // 1 on the path, 2 done
  const back = new Set();
  const starts = [...ids.filter((id) => !hasIncoming.has(id)), ...[...ids].sort((a, b) => balance.get(a) - balance.get(b))];
  for (const start of starts) {
    if (state.has(start)) continue;
    const stack = [[start, 0]];
    state.set(start, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const list = out.get(top[0]);
      if (top[1] >= list.length) {
        state.set(top[0], 2);
        stack.pop();
        continue;
      }
      const index = list[top[1]++];
      const next = edges[index].to;
      if (state.get(next) === 1) back.add(index);
      else if (!state.has(next)) {
        state.set(next, 1);
        stack.push([next, 0]);
      }
    }
  }
  return back;
}

/**
 * The layer of each node (Map id → 0-based layer): the longest path to it from a root over
 * the edges left once `back` (indexes of cycle-closing edges) and self-loops are set aside.
 */
export function assignLayers(ids, edges, back = backEdges(ids, edges)) {
  const forward = edges.filter((edge, index) => edge.from !== edge.to && !back.has(index));
  const indegree = new Map(ids.map((id) => [id, 0]));
  const out = new Map(ids.map((id) => [id, []]));
  for (const edge of forward) {
    indegree.set(edge.to, indegree.get(edge.to) + 1);
    out.get(edge.from).push(edge.to);
  }
  const layer = new Map(ids.map((id) => [id, 0]));
  const queue = ids.filter((id) => indegree.get(id) === 0);
  for (let i = 0; i < queue.length; i++) {
    const id = queue[i];
    for (const next of out.get(id)) {
      layer.set(next, Math.max(layer.get(next), layer.get(id) + 1));
      indegree.set(next, indegree.get(next) - 1);
      if (indegree.get(next) === 0) queue.push(next);
    }
  }
  return layer;
}

/**
 * Crossings between edges joining the same pair of layers, given `layers` (arrays of ids,
 * left to right) and the acyclic edges as `[from, to]` pairs.
 */
export function countCrossings(layers, pairs) {
  const position = new Map();
  const layerOf = new Map();
  layers.forEach((ids, l) => ids.forEach((id, i) => { position.set(id, i); layerOf.set(id, l); }));
  let crossings = 0;
  for (let a = 0; a < pairs.length; a++) {
    for (let b = a + 1; b < pairs.length; b++) {
      const [a1, a2] = pairs[a];
      const [b1, b2] = pairs[b];
      if (layerOf.get(a1) !== layerOf.get(b1) || layerOf.get(a2) !== layerOf.get(b2)) continue;
      if ((position.get(a1) - position.get(b1)) * (position.get(a2) - position.get(b2)) < 0) crossings++;
    }
  }
  return crossings;
}

/**
 * Orders the nodes of each layer to reduce crossings: alternating down and up sweeps sort a
 * layer by the mean relative position of each node's neighbours in the other layers, keeping
 * the best order seen. `layers` are arrays of ids; returns new arrays.
 */
export function orderLayers(layers, pairs, sweeps = 8) {
  const preds = new Map();
  const succs = new Map();
  for (const [from, to] of pairs) {
    if (!preds.has(to)) preds.set(to, []);
    if (!succs.has(from)) succs.set(from, []);
    preds.get(to).push(from);
    succs.get(from).push(to);
  }
  let current = layers.map((ids) => [...ids]);
  let best = current;
  let bestCrossings = countCrossings(current, pairs);
  for (let sweep = 0; sweep < sweeps && bestCrossings > 0; sweep++) {
    const down = sweep % 2 === 0;
    const relative = new Map();
    current.forEach((ids) => ids.forEach((id, i) => relative.set(id, (i + 0.5) / ids.length)));
    const neighbours = down ? preds : succs;
    const indexes = [...current.keys()];
    if (!down) indexes.reverse();
    current = current.map((ids) => [...ids]);
    for (const l of indexes) {
      const keyed = current[l].map((id, i) => {
        const near = neighbours.get(id) ?? [];
        const key = near.length ? near.reduce((sum, n) => sum + relative.get(n), 0) / near.length : relative.get(id);
        return { id, key, i };
      });
      keyed.sort((x, y) => x.key - y.key || x.i - y.i);
      current[l] = keyed.map((k) => k.id);
      current[l].forEach((id, i) => relative.set(id, (i + 0.5) / current[l].length));
    }
    const crossings = countCrossings(current, pairs);
    if (crossings < bestCrossings) {
      best = current;
      bestCrossings = crossings;
    }
  }
  return best;
}

const DEFAULTS = { nodeWidth: 120, nodeHeight: 36, gapX: 170, gapY: 36, margin: 20, loopBulge: 36, laneHeight: 16 };

/**
 * Lays out a directed graph left to right. `ids` are the node ids (edge ends missing from it
 * are added), `edges` `[{from, to}]`. Options: `nodeWidth` (a number or `id => number`),
 * `nodeHeight`, `gapX` (between columns, room for edge labels), `gapY`, `margin`, `loopBulge`,
 * `laneHeight` (the room an edge passing through a column takes, its label's). Returns
 * `{ width, height, nodes: [{id, layer, order, x, y, width, height}], edges: [{from, to,
 * kind: "forward"|"back"|"self", path, labelX, labelY}] }`, edges in the given order, `path`
 * SVG path data: an edge spanning several layers runs through a lane kept free in each column
 * it crosses and is labelled in the middle one; back edges loop under their nodes, self-loops
 * over theirs.
 */
export function layoutGraph(ids, edges, options = {}) {
  const o = { ...DEFAULTS, ...options };
  const all = [...new Set([...ids, ...edges.flatMap((e) => [e.from, e.to])])].sort();
  const back = backEdges(all, edges);
  const layerOf = assignLayers(all, edges, back);
  const count = all.length ? Math.max(...layerOf.values()) + 1 : 0;
  const layers = Array.from({ length: count }, (_, l) => all.filter((id) => layerOf.get(id) === l));
  const pairs = [];
  const lanes = new Map(); // edge index → the lane ids it passes through
  const laneIds = new Set();
  edges.forEach((edge, index) => {
    if (edge.from === edge.to || back.has(index)) return;
    const through = [];
    for (let l = layerOf.get(edge.from) + 1; l < layerOf.get(edge.to); l++) {
      const lane = `\u0000${index}:${l}`;
      layers[l].push(lane);
      laneIds.add(lane);
      through.push(lane);
    }
    lanes.set(index, through);
    [edge.from, ...through, edge.to].reduce((a, b) => { pairs.push([a, b]); return b; });
  });
  const ordered = orderLayers(layers, pairs);

  const isLane = (id) => laneIds.has(id);
  const widthOf = (id) => (isLane(id) ? 0 : typeof o.nodeWidth === "function" ? o.nodeWidth(id) : o.nodeWidth);
  const heightOf = (id) => (isLane(id) ? o.laneHeight : o.nodeHeight);
  const columnHeight = (column) => column.reduce((sum, id) => sum + heightOf(id), 0) + Math.max(0, column.length - 1) * o.gapY;
  const tallest = Math.max(0, ...ordered.map(columnHeight));
  const boxes = new Map();
  const columns = [];
  let x = o.margin;
  ordered.forEach((column, layer) => {
    const columnWidth = Math.max(...column.map(widthOf));
    columns.push({ left: x, right: x + columnWidth });
    let y = o.margin + (tallest - columnHeight(column)) / 2;
    column.forEach((id, order) => {
      const width = widthOf(id);
      boxes.set(id, { id, layer, order, x: x + (columnWidth - width) / 2, y, width, height: heightOf(id) });
      y += heightOf(id) + o.gapY;
    });
    x += columnWidth + o.gapX;
  });

  let minY = o.margin;
  let maxY = o.margin + tallest;
  const placed = edges.map((edge, index) => {
    const a = boxes.get(edge.from);
    const b = boxes.get(edge.to);
    if (a === b) {
      const cx = a.x + a.width / 2;
      const top = a.y - o.loopBulge * 1.3;
      minY = Math.min(minY, top - 14);
      return { from: edge.from, to: edge.to, kind: "self", labelX: cx, labelY: a.y - o.loopBulge,
        path: `M${cx - 12} ${a.y} C${cx - 34} ${top} ${cx + 34} ${top} ${cx + 12} ${a.y}` };
    }
    if (!back.has(index)) {
      let [x1, y1] = [a.x + a.width, a.y + a.height / 2];
      let path = `M${x1} ${y1}`;
      let label = null;
      const through = lanes.get(index);
      through.forEach((lane, i) => {
        const { layer, y, height } = boxes.get(lane);
        const [x2, y2] = [columns[layer].left, y + height / 2];
        path += curve(x1, y1, x2, y2) + ` L${columns[layer].right} ${y2}`;
        if (i === Math.floor((through.length - 1) / 2)) label = [(columns[layer].left + columns[layer].right) / 2, y2];
        [x1, y1] = [columns[layer].right, y2];
      });
      const [x2, y2] = [b.x, b.y + b.height / 2];
      label ??= [(x1 + x2) / 2, (y1 + y2) / 2];
      return { from: edge.from, to: edge.to, kind: "forward", labelX: label[0], labelY: label[1], path: path + curve(x1, y1, x2, y2) };
    }
    const [x1, y1, x2, y2] = [a.x + a.width / 2, a.y + a.height, b.x + b.width / 2, b.y + b.height];
    const by = Math.max(y1, y2) + o.loopBulge * (1 + Math.abs(a.layer - b.layer) / 2);
    const labelY = (y1 + y2) / 8 + 0.75 * by;
    maxY = Math.max(maxY, labelY + 14);
    return { from: edge.from, to: edge.to, kind: "back", labelX: (x1 + x2) / 2, labelY,
      path: `M${x1} ${y1} C${x1} ${by} ${x2} ${by} ${x2} ${y2}` };
  });

  const shift = o.margin - minY;
  return {
    width: Math.max(0, x - o.gapX + o.margin),
    height: count ? maxY - minY + 2 * o.margin : 0,
    nodes: all.map((id) => ({ ...boxes.get(id), y: boxes.get(id).y + shift })),
    edges: shift ? placed.map((edge) => ({ ...edge, labelY: edge.labelY + shift, path: shiftPath(edge.path, shift) })) : placed,
  };
}

/** A cubic from (x1, y1) to (x2, y2) leaving and arriving horizontally. */
function curve(x1, y1, x2, y2) {
  const dx = (x2 - x1) / 2;
  return ` C${x1 + dx} ${y1} ${x2 - dx} ${y2} ${x2} ${y2}`;
}

/** Path data (`M`, `C` and `L` with absolute x y pairs) moved down by `dy`. */
function shiftPath(path, dy) {
  let i = 0;
  return path.replace(/-?\d+(?:\.\d+)?(?:e-?\d+)?/g, (n) => String(i++ % 2 ? Number(n) + dy : Number(n)));
}
