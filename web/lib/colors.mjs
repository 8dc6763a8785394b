// One colour per service, the same on every page: services known at start (all of them, in
// name order) take distinct colours from a palette readable on light and dark backgrounds,
// each starting from a hash of its name and moving on while that colour is taken.

export const PALETTE = [
  "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2",
  "#edc948", "#ff9da7", "#9c755f", "#8cd17d", "#499894", "#d37295",
];

const assigned = new Map();
const taken = new Set();

/** FNV-1a over the UTF-16 code units of `text`. */
export function hashText(text) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

function assign(name) {
  let index = hashText(name) % PALETTE.length;
  for (let probe = 0; probe < PALETTE.length && taken.has(index); probe++) index = (index + 1) % PALETTE.length;
  taken.add(index);
  assigned.set(name, PALETTE[index]);
  return PALETTE[index];
}

/** Gives every named service its colour up front, in name order, so the first twelve never share one. */
export function registerServices(names) {
  for (const name of [...names].map(String).sort()) {
    if (!assigned.has(name)) assign(name);
  }
}

/** The colour of a service. */
export function serviceColor(name) {
  const key = String(name ?? "");
  return assigned.get(key) ?? assign(key);
}

/** Forgets every assignment (for tests). */
export function resetColors() {
  assigned.clear();
  taken.clear();
}
