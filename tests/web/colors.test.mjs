// Unit tests of service colours (node --test tests/web/).
import { test } from "node:test";
import assert from "node:assert/strict";
import { PALETTE, registerServices, serviceColor, resetColors } from "../../web/lib/colors.mjs";

test("registered services get distinct colours whatever order they are asked in", () => {
  resetColors();
  const names = ["frontend", "checkout", "payment", "inventory", "cart", "auth", "mailer", "search"];
  registerServices(names);
  const colours = names.map(serviceColor);
  assert.equal(new Set(colours).size, names.length);
  resetColors();
  registerServices([...names].reverse());
  assert.deepEqual(names.map(serviceColor), colours);
});

test("a colour is stable once given, and more services than colours still get one", () => {
  resetColors();
  const first = serviceColor("late");
  assert.equal(serviceColor("late"), first);
  const many = Array.from({ length: PALETTE.length + 5 }, (_, i) => serviceColor(`s${i}`));
  assert.ok(many.every((colour) => PALETTE.includes(colour)));
  assert.equal(new Set(many.slice(0, PALETTE.length - 1)).size, PALETTE.length - 1);
});
