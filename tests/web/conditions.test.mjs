// Unit tests of the trace search tag box (node --test tests/web/).
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConditions, formatConditions } from "../../web/lib/conditions.mjs";

test("terms split on spaces, quotes keep spaces", () => {
  assert.deepEqual(parseConditions("http.route=/cart  error"), ["http.route=/cart", "error"]);
  assert.deepEqual(parseConditions('peer.service="card api" !retry'), ["peer.service=card api", "!retry"]);
  assert.deepEqual(parseConditions('"a b=c"'), ["a b=c"]);
  assert.deepEqual(parseConditions("   "), []);
  assert.deepEqual(parseConditions(""), []);
});

test("an unclosed quote is an error, not a guess", () => {
  assert.throws(() => parseConditions('k="open'), /unclosed quote/);
});

test("formatting round-trips", () => {
  assert.deepEqual(parseConditions('msg="say \\"hi\\""'), ['msg=say "hi"']);
  assert.deepEqual(parseConditions("http.route=~/api/\\d+"), ["http.route=~/api/\\d+"]);
  for (const conditions of [["a=b", "c"], ["peer.service=card api"], ['msg=say "hi"'], ["path=C:\\dir"], ['q=a \\"b'], []]) {
    assert.deepEqual(parseConditions(formatConditions(conditions)), conditions);
  }
});
