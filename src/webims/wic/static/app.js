// The WIC page (TS 24.371 Annex A.3.2 step 1, then steps 2-3 over SIP).
//
// States of the page:
//   signed-out  -- "Log in" sends the browser to the WAF's authorize URL
//                  (code flow + PKCE S256; verifier and state kept in
//                  sessionStorage for the round trip);
//   callback    -- at /callback: check state, exchange the code at the token
//                  endpoint, drop code/state from the URL;
//   signed-in   -- tokens in memory and sessionStorage (never in a URL),
//                  the IMPI/IMPUs and the token's expiry shown, a refresh at
//                  80% of the lifetime (refresh tokens rotate), SIP over WSS
//                  to the eP-CSCF with Bearer auth, re-REGISTER after each
//                  refresh; the reg event followed (a network deregistration
//                  with "deactivated" is answered by a fresh registration,
//                  with a fresh token when the one held is near its expiry;
//                  "rejected" ends the registration for good: SPEC §9.4 14);
//                  once registered, audio calls to and from other IMPUs
//                  (call.js); "Log out" hangs up, unsubscribes, unregisters,
//                  logs out of the WWSF and forgets everything.
// A failed WebSocket or REGISTER shows as such and leaves the token and the
// identities on screen.

import { Calls, callTarget } from "./call.js";
import {
  OAuthError,
  exchangeCode,
  jwtClaims,
  readCallback,
  refreshDelay,
  refreshTokens,
  revokeToken,
  startLogin,
} from "./oauth.js";

const SESSION_KEY = "webims.wic.session";
const PENDING_KEY = "webims.wic.pending";
const INSTANCE_KEY = "webims.wic.instance";
// A token with less than this left is refreshed before a fresh registration.
const FRESH_TOKEN_MARGIN_MS = 30000;

const $ = (id) => document.getElementById(id);

const wic = {
  config: null,
  tokens: null,
  refreshTimer: null,
  clockTimer: null,
  line: null,
  // The refresh under way, if any.
  refreshing: null,
  // A 401 to a REGISTER triggers one refresh until the next success.
  tokenRetried: false,
  // The last registration states shown, oldest first ({state, text, at}).
  regStates: [],
  // The calls (call.js), and the last call states shown ({state, detail, at}).
  calls: null,
  callStates: [],
};
// For people debugging in the console and for the browser test.
globalThis.webimsWic = wic;

function show(view) {
  for (const el of document.querySelectorAll("[data-view]")) {
    el.hidden = el.dataset.view !== view;
  }
  document.body.dataset.state = view;
}

function setError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

const DEREGISTERED_DETAIL = {
  deactivated: "registering again",
  expired: "registering again",
  rejected: "not registering again",
  unregistered: "by a registration elsewhere; not registering again",
};

function regStateText(state, detail) {
  if (state === "failed") return `failed: ${detail}`;
  if (state === "deregistered") return `deregistered by the network (${detail})`;
  return state;
}

function setRegistration(state, detail, status = 0) {
  const el = $("reg-state");
  el.dataset.state = state;
  el.textContent = regStateText(state, detail);
  wic.regStates.push({ state, text: el.textContent, at: Date.now() });
  if (wic.regStates.length > 50) wic.regStates.shift();
  if (state === "deregistered") {
    $("reg-detail").textContent = DEREGISTERED_DETAIL[detail] || "";
  } else {
    $("reg-detail").textContent = state === "failed" ? "" : detail || "";
  }
  renderCallControls();
  if (state === "registered") {
    wic.tokenRetried = false;
  } else if (state === "failed" && status === 401 && !wic.tokenRetried && wic.line) {
    // RFC 8898: the eP-CSCF refused the token (expired, revoked, or signed
    // with a key it no longer trusts).  Get a fresh one and register again, once.
    wic.tokenRetried = true;
    clearTimeout(wic.refreshTimer);
    refresh();
  }
}

// Buttons of the call section for a call state (and the registration's).
function renderCallControls() {
  const state = $("call-state").dataset.state;
  const registered = $("reg-state").dataset.state === "registered";
  const idle = state === "idle" || state === "ended";
  $("call").disabled = !(registered && idle);
  $("answer").hidden = state !== "incoming";
  $("hangup").hidden = idle;
  $("hangup").textContent = state === "incoming" ? "Decline" : state === "calling" ? "Cancel" : "Hang up";
}

function setCall(state, detail) {
  const el = $("call-state");
  el.dataset.state = state;
  el.textContent = state;
  $("call-detail").textContent = detail || "";
  wic.callStates.push({ state, detail: detail || "", at: Date.now() });
  if (wic.callStates.length > 50) wic.callStates.shift();
  renderCallControls();
}

function placeCall(event) {
  event.preventDefault();
  const typed = $("call-target").value;
  const target = callTarget(typed, wic.config && wic.config.domain);
  if (!target) {
    setCall("ended", `not a SIP address or user: ${typed.trim() || "(nothing)"}`);
    return;
  }
  wic.calls.call(target);
}

function saveTokens(tokens) {
  wic.tokens = tokens;
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(tokens));
}

function loadTokens() {
  try {
    const tokens = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
    return tokens && typeof tokens.access_token === "string" ? tokens : null;
  } catch {
    return null;
  }
}

function forget() {
  clearTimeout(wic.refreshTimer);
  clearInterval(wic.clockTimer);
  wic.tokens = null;
  sessionStorage.removeItem(SESSION_KEY);
  sessionStorage.removeItem(PENDING_KEY);
  sessionStorage.removeItem(INSTANCE_KEY);
}

// The +sip.instance of this tab's WIC (RFC 5626 §4.1): the same across a
// reload, so that the REGISTER from the new WebSocket replaces the binding
// of the old one rather than adding a second contact that lingers until it
// expires.
function instanceId() {
  let id = sessionStorage.getItem(INSTANCE_KEY);
  if (!id) {
    id = crypto.randomUUID();
    sessionStorage.setItem(INSTANCE_KEY, id);
  }
  return id;
}

function renderIdentities(tokens) {
  $("impi").textContent = tokens.impi || "(none)";
  const list = $("impus");
  list.replaceChildren(
    ...tokens.impu.map((impu, i) => {
      const item = document.createElement("li");
      item.textContent = impu;
      if (i === 0) item.title = "default public identity (registered)";
      return item;
    }),
  );
  const claims = jwtClaims(tokens.access_token);
  $("web-user").textContent = (claims && claims.sub) || "";
  $("scope").textContent = tokens.scope || (claims && claims.scope) || "";
  $("issuer").textContent = (claims && claims.iss) || "";
}

function renderExpiry() {
  const tokens = wic.tokens;
  if (!tokens) return;
  const left = Math.round((tokens.expires_at - Date.now()) / 1000);
  const at = new Date(tokens.expires_at).toLocaleTimeString();
  $("expiry").textContent = left > 0 ? `${at} (in ${left} s)` : `${at} (expired)`;
  $("expiry").dataset.expiresAt = String(tokens.expires_at);
}

function scheduleRefresh() {
  clearTimeout(wic.refreshTimer);
  wic.refreshTimer = setTimeout(refresh, refreshDelay(wic.tokens));
}

// One refresh at a time: a refresh token is good for one use only (a second
// use revokes the whole family), so a timer and a 401 must not both spend it.
function refresh() {
  if (!wic.refreshing) {
    wic.refreshing = refreshOnce().finally(() => {
      wic.refreshing = null;
    });
  }
  return wic.refreshing;
}

async function refreshOnce() {
  const current = wic.tokens;
  if (!current || !current.refresh_token) {
    setError("The access token expired and there is no refresh token: log in again.");
    return;
  }
  try {
    const fresh = await refreshTokens(wic.config, current);
    if (wic.tokens !== current) return; // logged out meanwhile
    saveTokens(fresh);
    setError("");
    $("refreshes").textContent = String(Number($("refreshes").textContent) + 1);
    renderIdentities(fresh);
    renderExpiry();
    scheduleRefresh();
    if (wic.line) wic.line.reauthorise(fresh.access_token);
  } catch (err) {
    if (wic.tokens !== current) return;
    if (err instanceof OAuthError && err.status && err.status < 500) {
      // invalid_grant: the family was revoked (logout elsewhere, reuse).
      await stopSip();
      forget();
      show("signed-out");
      setError(`The session ended (${err.message}): log in again.`);
    } else {
      setError(`Token refresh failed (${err.message}); retrying in 5 s.`);
      clearTimeout(wic.refreshTimer);
      wic.refreshTimer = setTimeout(refresh, 5000);
    }
  }
}

// The token for a fresh initial registration after the network's
// "deactivated": the one held, or a new one when it is near its expiry.
async function tokenForRegistration() {
  if (wic.tokens && wic.tokens.expires_at - Date.now() < FRESH_TOKEN_MARGIN_MS) await refresh();
  return wic.tokens ? wic.tokens.access_token : null;
}

async function startSip() {
  if (!wic.config.pcscf_url || wic.tokens.impu.length === 0) {
    setRegistration("failed", "no eP-CSCF URL or no IMPU to register");
    return;
  }
  $("pcscf").textContent = wic.config.pcscf_url;
  try {
    const { SipLine } = await import("./sip.js");
    wic.line = new SipLine({
      url: wic.config.pcscf_url,
      impu: wic.tokens.impu[0],
      token: wic.tokens.access_token,
      instanceId: instanceId(),
      onState: setRegistration,
      freshToken: tokenForRegistration,
    });
    wic.calls.attach(wic.line.ua);
    wic.line.start();
  } catch (err) {
    wic.line = null;
    setRegistration("failed", `SIP could not start: ${err.message}`);
  }
}

async function stopSip() {
  const line = wic.line;
  wic.line = null;
  wic.calls.close();
  if (line) await line.stop();
}

async function signedIn(tokens) {
  saveTokens(tokens);
  renderIdentities(tokens);
  renderExpiry();
  show("signed-in");
  clearInterval(wic.clockTimer);
  wic.clockTimer = setInterval(renderExpiry, 1000);
  if (tokens.expires_at - Date.now() < 1000) {
    // A page reloaded after its token ran out: refresh before using it.
    await refresh();
    if (!wic.tokens) return;
  } else {
    scheduleRefresh();
  }
  await startSip();
}

async function login() {
  setError("");
  const { url, pending } = await startLogin(wic.config);
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  location.assign(url);
}

async function callback() {
  const search = location.search;
  // The code and state leave the address bar (and the history) at once.
  history.replaceState(null, "", "/");
  const pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) || "null");
  sessionStorage.removeItem(PENDING_KEY);
  const code = readCallback(search, pending);
  return exchangeCode(wic.config, code, pending.verifier);
}

async function csrfToken() {
  // The WWSF names its CSRF token in /api/config; ask again, as the session
  // (and with it the token) may have changed since the page loaded.
  const response = await fetch("/api/config", { credentials: "same-origin", cache: "no-store" });
  const config = await response.json();
  return config.csrf_token || "";
}

async function revocationUrl() {
  try {
    const response = await fetch("/.well-known/oauth-authorization-server", { cache: "no-store" });
    return (await response.json()).revocation_endpoint || null;
  } catch {
    return null;
  }
}

async function logout() {
  $("logout").disabled = true;
  const tokens = wic.tokens;
  try {
    await stopSip();
    setRegistration("unregistered", "");
    if (tokens && tokens.refresh_token) {
      // RFC 7009: the refresh token goes even if the web session is gone.
      await revokeToken(await revocationUrl(), wic.config, tokens.refresh_token, "refresh_token");
    }
    const csrf = await csrfToken();
    const response = await fetch("/logout", {
      method: "POST",
      body: new URLSearchParams({ csrf_token: csrf }),
      headers: { "X-CSRF-Token": csrf },
      credentials: "same-origin",
      redirect: "manual",
    });
    if (response.status >= 400) setError(`Logout: the WWSF answered ${response.status}.`);
  } catch (err) {
    setError(`Logout: ${err.message}`);
  } finally {
    forget();
    show("signed-out");
    $("logout").disabled = false;
  }
}

async function main() {
  $("login").addEventListener("click", () => login().catch((err) => setError(err.message)));
  $("logout").addEventListener("click", () => logout());
  wic.calls = new Calls({ audio: $("remote-audio"), onState: setCall });
  $("call-form").addEventListener("submit", placeCall);
  $("answer").addEventListener("click", () => wic.calls.answer());
  $("hangup").addEventListener("click", () => wic.calls.hangUp());
  try {
    const response = await fetch("/api/config", { credentials: "same-origin", cache: "no-store" });
    if (!response.ok) throw new Error(`/api/config answered ${response.status}`);
    wic.config = await response.json();
  } catch (err) {
    show("signed-out");
    setError(`Cannot load the configuration: ${err.message}`);
    return;
  }
  $("domain").textContent = wic.config.domain || "";
  if (location.pathname === "/callback") {
    show("busy");
    try {
      await signedIn(await callback());
    } catch (err) {
      show("signed-out");
      setError(`Login failed: ${err.message}`);
    }
    return;
  }
  const tokens = loadTokens();
  if (tokens) {
    await signedIn(tokens);
  } else {
    show("signed-out");
  }
}

main();
