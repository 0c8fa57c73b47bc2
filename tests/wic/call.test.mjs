// Unit tests of what the WIC's call module (src/webims/wic/static/call.js)
// makes of what a person types in "To"; run by tests/wic/test_static.py.
import assert from "node:assert/strict";
import { test } from "node:test";

import { callTarget } from "../../src/webims/wic/static/call.js";

test("a SIP, SIPS or tel URI is called as typed", () => {
  assert.equal(callTarget("sip:user2_public1@home1.net", "home1.net"), "sip:user2_public1@home1.net");
  assert.equal(callTarget("  sips:bob@example.org ", "home1.net"), "sips:bob@example.org");
  assert.equal(callTarget("tel:+4930123456", "home1.net"), "tel:+4930123456");
});

test("user@host gets sip:, a bare user part the home domain", () => {
  assert.equal(callTarget("bob@example.org", "home1.net"), "sip:bob@example.org");
  assert.equal(callTarget("user2_public1", "home1.net"), "sip:user2_public1@home1.net");
});

test("nothing, spaces or brackets are not a target", () => {
  for (const text of ["", "   ", "two words", "<sip:x@y>", "a@b@c", 'x"y']) {
    assert.equal(callTarget(text, "home1.net"), null, text);
  }
  assert.equal(callTarget("user2_public1", ""), null);
});
