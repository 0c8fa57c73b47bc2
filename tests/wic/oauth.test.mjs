// Unit tests of the WIC's OAuth module (src/webims/wic/static/oauth.js) on
// Node's own test runner; Node has the same Web Crypto, URL and fetch types
// as the browser.  Run by tests/wic/test_static.py.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  OAuthError,
  challengeS256,
  exchangeCode,
  jwtClaims,
  makeState,
  makeVerifier,
  readCallback,
  refreshDelay,
  refreshTokens,
  startLogin,
} from "../../src/webims/wic/static/oauth.js";

const config = {
  authorize_url: "https://wwsf.example:8443/authorize",
  token_url: "https://wwsf.example:8443/token",
  redirect_uri: "https://wwsf.example:8443/callback",
  client_id: "wic",
  scope: "ims:register ims:call",
};

test("S256 challenge of RFC 7636 appendix B", async () => {
  assert.equal(
    await challengeS256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
  );
});

test("verifiers and states are fresh and in the unreserved alphabet", () => {
  const verifiers = new Set(Array.from({ length: 50 }, makeVerifier));
  assert.equal(verifiers.size, 50);
  for (const v of verifiers) assert.match(v, /^[A-Za-z0-9_-]{43}$/);
  assert.notEqual(makeState(), makeState());
});

test("the authorize URL asks for a code with an S256 challenge of the verifier", async () => {
  const { url, pending } = await startLogin(config);
  const u = new URL(url);
  assert.equal(u.origin + u.pathname, config.authorize_url);
  const q = u.searchParams;
  assert.equal(q.get("response_type"), "code");
  assert.equal(q.get("client_id"), "wic");
  assert.equal(q.get("redirect_uri"), config.redirect_uri);
  assert.equal(q.get("scope"), "ims:register ims:call");
  assert.equal(q.get("code_challenge_method"), "S256");
  assert.equal(q.get("code_challenge"), await challengeS256(pending.verifier));
  assert.equal(q.get("state"), pending.state);
  assert.ok(!url.includes(pending.verifier), "the verifier never leaves the browser before /token");
});

test("the callback is refused on a state mismatch, an error, or no login started", () => {
  const pending = { verifier: "v", state: "s1" };
  assert.equal(readCallback("?code=abc&state=s1", pending), "abc");
  assert.throws(() => readCallback("?code=abc&state=other", pending), /state/);
  assert.throws(() => readCallback("?code=abc", pending), /state/);
  assert.throws(() => readCallback("?code=abc&state=s1", null), /no login/);
  assert.throws(
    () => readCallback("?error=access_denied&error_description=no+IMS+identity&state=s1", pending),
    (err) => err instanceof OAuthError && err.code === "access_denied" && /no IMS identity/.test(err.message),
  );
});

function recordingFetch(status, body) {
  const calls = [];
  const impl = async (url, init) => {
    calls.push({ url, init, form: Object.fromEntries(init.body) });
    return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
  };
  return { calls, impl };
}

test("the code exchange is a form POST with the verifier, and keeps the identities", async () => {
  const { calls, impl } = recordingFetch(200, {
    access_token: "a.b.c",
    token_type: "Bearer",
    expires_in: 600,
    refresh_token: "r1",
    scope: "ims:register ims:call",
    impi: "user1_private@home1.net",
    impu: ["sip:user1_public1@home1.net"],
  });
  const before = Date.now();
  const tokens = await exchangeCode(config, "the-code", "the-verifier", impl);
  assert.equal(calls.length, 1);
  assert.equal(calls[0].url, config.token_url);
  assert.equal(calls[0].init.method, "POST");
  assert.ok(calls[0].init.body instanceof URLSearchParams);
  assert.deepEqual(calls[0].form, {
    grant_type: "authorization_code",
    code: "the-code",
    redirect_uri: config.redirect_uri,
    client_id: "wic",
    code_verifier: "the-verifier",
  });
  assert.equal(tokens.access_token, "a.b.c");
  assert.equal(tokens.refresh_token, "r1");
  assert.equal(tokens.impi, "user1_private@home1.net");
  assert.deepEqual(tokens.impu, ["sip:user1_public1@home1.net"]);
  assert.ok(tokens.expires_at >= before + 600_000 && tokens.expires_at <= Date.now() + 600_000);
});

test("a refusal of the token endpoint becomes an OAuthError with its code", async () => {
  const { impl } = recordingFetch(400, { error: "invalid_grant", error_description: "code reused" });
  await assert.rejects(
    exchangeCode(config, "c", "v", impl),
    (err) => err instanceof OAuthError && err.code === "invalid_grant" && err.status === 400,
  );
});

test("a refresh sends the refresh token and keeps identities the answer leaves out", async () => {
  const { calls, impl } = recordingFetch(200, { access_token: "n.e.w", expires_in: 300, refresh_token: "r2" });
  const previous = { refresh_token: "r1", impi: "i@home1.net", impu: ["sip:u@home1.net"] };
  const fresh = await refreshTokens(config, previous, impl);
  assert.deepEqual(calls[0].form, { grant_type: "refresh_token", refresh_token: "r1", client_id: "wic" });
  assert.equal(fresh.refresh_token, "r2");
  assert.equal(fresh.impi, "i@home1.net");
  assert.deepEqual(fresh.impu, ["sip:u@home1.net"]);
});

test("the refresh falls at 80% of the lifetime, and never in the past", () => {
  const now = 1_000_000;
  assert.equal(refreshDelay({ expires_in: 600, expires_at: now + 600_000 }, now), 480_000);
  assert.equal(refreshDelay({ expires_in: 600, expires_at: now + 60_000 }, now), 1000);
});

test("JWT claims are read for display, and a non-JWT gives null", () => {
  const part = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
  const token = `${part({ alg: "ES256" })}.${part({ sub: "user1", impu: ["sip:ü@home1.net"] })}.sig`;
  assert.deepEqual(jwtClaims(token), { sub: "user1", impu: ["sip:ü@home1.net"] });
  assert.equal(jwtClaims("opaque-token"), null);
});
