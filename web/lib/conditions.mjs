// The tag box of trace search: `http.route=/cart error "peer.service"="card api"` split
// into the API's `where` conditions (one per space-separated term; double quotes keep spaces,
// and within them `\"` is a quote and `\\` a backslash; elsewhere a backslash is itself, so
// regular expressions such as `http.route=~/api/\d+` need no escaping).

/** Splits tag text into conditions; throws on an unclosed quote. */
export function parseConditions(text) {
  const conditions = [];
  const chars = [...String(text ?? "")];
  let current = "";
  let quoted = false;
  let started = false;
  for (let i = 0; i < chars.length; i++) {
    const char = chars[i];
    if (quoted && char === "\\" && (chars[i + 1] === '"' || chars[i + 1] === "\\")) {
      current += chars[++i];
    } else if (char === '"') {
      quoted = !quoted;
      started = true;
    } else if (!quoted && /\s/.test(char)) {
      if (started) conditions.push(current);
      current = "";
      started = false;
    } else {
      current += char;
      started = true;
    }
  }
  if (quoted) throw new Error("a tag condition has an unclosed quote");
  if (started) conditions.push(current);
  return conditions.filter((condition) => condition.length > 0);
}

/** The text that parses back into `conditions` (quoted where a condition holds a space or a quote). */
export function formatConditions(conditions) {
  return conditions.map((condition) => (/[\s"]/.test(condition)
    ? `"${condition.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`
    : condition)).join(" ");
}
