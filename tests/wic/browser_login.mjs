// Drives Debian's headless Chromium through the WIC's login, as a person
// would: open the WWSF, press "Log in", fill in the WWSF's login form, come
// back to the page, wait for the identities and the SIP registration state.
//
//   node browser_login.mjs <base-url> <user> <password> <screenshot.png> [MODES]
//
// MODES, comma-separated: "refresh" waits for the page's next token refresh
// and reports the storage after it (and the registration state once settled
// again); "registered" waits for the SIP registration to succeed rather than
// for it to settle either way; "hold" then writes "hold: registered" on
// stderr and waits for a line on stdin before going on (the test looks at
// the IMS core while the browser is registered); "regevent" (with "hold")
// takes that line as the registration state the page must then reach after
// a deregistration by the network ("registered" again, or "deregistered"),
// writes "hold: after <state>" on stderr, waits for another line, and goes
// on to the logout without the reload.  The output also lists the SIP
// messages on the page's WebSockets (start line, From, To, CSeq, Accept,
// Event, Subscription-State, Expires, the iat of the Bearer token, the body
// of a NOTIFY) and, in mode "regevent", the registration states the page
// showed after the first hold.
//
// The user "guest" presses the login page's guest button instead of logging in.
// Prints one JSON object on stdout: what the page shows (IMPI, IMPUs, the
// registration state, the expiry), what it holds (the session storage), the
// address it ended on and every URL the browser asked for, so that the test
// can check that no token ever travelled in a URL.  Before the login it opens a forged /callback; after it, it reloads the page;
// last it presses "Log out" and reports what is left.  Exit 1 with the
// reason on stderr when a step does not happen in time.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { launch, nextLine } from "./chromium.mjs";

const [base, user, password, screenshot, mode] = process.argv.slice(2);
const modes = new Set((mode || "").split(",").filter(Boolean));
const settled = modes.has("registered") ? ["registered"] : ["registered", "failed"];
const profile = mkdtempSync(path.join(tmpdir(), "webims-chromium-"));
const requested = [];
const consoleLines = [];
const sip = [];

// One SIP message of a WebSocket frame, as the test reads it.
function sipSummary(dir, payload) {
  const text = String(payload);
  const [head, body = ""] = text.split("\r\n\r\n", 2);
  const lines = head.split("\r\n");
  const header = (name) => {
    const line = lines.find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
    return line ? line.slice(name.length + 1).trim() : null;
  };
  const start = lines[0];
  // When the Bearer token of the request was issued (its iat claim).
  const bearer = /^Bearer\s+(?:access_token=")?[^.\s]+\.([^.\s]+)\./i.exec(header("Authorization") || "");
  const claims = bearer ? JSON.parse(Buffer.from(bearer[1], "base64url").toString()) : null;
  return {
    dir,
    at: Date.now(),
    start,
    from: header("From"),
    to: header("To"),
    cseq: header("CSeq"),
    accept: header("Accept"),
    event: header("Event"),
    subscriptionState: header("Subscription-State"),
    expires: header("Expires"),
    tokenIat: claims ? claims.iat : null,
    body: start.startsWith("NOTIFY ") ? body : "",
  };
}

let context;
try {
  context = await launch(profile, { viewport: { width: 900, height: 760 } });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(20000);
  page.on("request", (request) => requested.push(request.url()));
  page.on("console", (msg) => consoleLines.push(`${msg.type()}: ${msg.text()}`));
  page.on("pageerror", (err) => consoleLines.push(`pageerror: ${err.message}`));
  page.on("websocket", (ws) => {
    ws.on("framesent", (frame) => sip.push(sipSummary("sent", frame.payload)));
    ws.on("framereceived", (frame) => sip.push(sipSummary("received", frame.payload)));
  });

  // A callback this tab did not ask for (forged code and state) is refused
  // before any token request.
  await page.goto(`${base}/callback?code=forged&state=forged`);
  await page.waitForFunction(() => document.body.dataset.state === "signed-out");
  const forged = await page.evaluate(() => ({
    error: document.getElementById("error").textContent,
    url: location.href,
  }));
  forged.tokenRequests = requested.filter((u) => new URL(u).pathname === "/token").length;

  await page.goto(`${base}/`);
  await page.locator("#login").click();

  await page.waitForURL((url) => url.pathname === "/login");
  if (user === "guest") {
    // No IMS subscription: borrow an identity of the WWSF's pool (TS 33.203 X.4).
    await page.locator('form[action="/guest"] button').click();
  } else {
    // The WWSF's own form: whatever its field names, one text and one password input.
    await page.locator("form input[type=text], form input:not([type])").first().fill(user);
    await page.locator("form input[type=password]").first().fill(password);
    await page.locator("form input[type=password]").first().press("Enter");
  }

  await page.waitForSelector("#impus li");
  // The SIP side: wait until the registration settles.
  const settledIn = (states) => states.includes(document.getElementById("reg-state").dataset.state);
  await page.waitForFunction(settledIn, settled, { timeout: 15000 });
  const shown = await page.evaluate(() => ({
    impi: document.getElementById("impi").textContent,
    impus: [...document.querySelectorAll("#impus li")].map((li) => li.textContent),
    regState: document.getElementById("reg-state").dataset.state,
    regText: document.getElementById("reg-state").textContent,
    expiry: document.getElementById("expiry").textContent,
    webUser: document.getElementById("web-user").textContent,
    error: document.getElementById("error").hidden ? "" : document.getElementById("error").textContent,
    storage: Object.fromEntries(Object.entries(sessionStorage)),
    localStorage: Object.keys(localStorage),
    url: location.href,
    text: document.body.innerText,
  }));
  await page.screenshot({ path: screenshot, fullPage: true });

  let regevent = null;
  if (modes.has("hold")) {
    const since = await page.evaluate(() => globalThis.webimsWic.regStates.length);
    process.stderr.write("hold: registered\n");
    const target = await nextLine();
    if (modes.has("regevent")) {
      // Deregistered by the network, then in the state the test expects.
      const reached = ([state, from]) => {
        const states = globalThis.webimsWic.regStates.slice(from).map((s) => s.state);
        const dropped = states.lastIndexOf("deregistered");
        const current = document.getElementById("reg-state").dataset.state;
        return dropped >= 0 && current === state && states.lastIndexOf(state) >= dropped;
      };
      await page.waitForFunction(reached, [target, since], { timeout: 30000 });
      regevent = await page.evaluate((from) => {
        return {
          states: globalThis.webimsWic.regStates.slice(from),
          regText: document.getElementById("reg-state").textContent,
          regDetail: document.getElementById("reg-detail").textContent,
          refreshes: Number(document.getElementById("refreshes").textContent),
        };
      }, since);
      process.stderr.write(`hold: after ${target}\n`);
      await nextLine();
      regevent.statesLater = await page.evaluate((from) => globalThis.webimsWic.regStates.slice(from), since);
      regevent.refreshesLater = await page.evaluate(() => Number(document.getElementById("refreshes").textContent));
    }
  }

  let refreshed = null;
  if (modes.has("refresh")) {
    const before = await page.evaluate(() => Number(document.getElementById("refreshes").textContent));
    await page.waitForFunction((n) => Number(document.getElementById("refreshes").textContent) > n, before, {
      timeout: 60000,
    });
    // The re-REGISTER with the new token, answered.
    await page.waitForFunction(settledIn, settled, { timeout: 15000 });
    refreshed = await page.evaluate(() => ({
      storage: Object.fromEntries(Object.entries(sessionStorage)),
      impus: [...document.querySelectorAll("#impus li")].map((li) => li.textContent),
      regText: document.getElementById("reg-state").textContent,
    }));
  }

  let reloaded = null;
  if (!modes.has("regevent")) {
    // A reload keeps the session of this tab: same token, no new login.
    const before = requested.length;
    await page.reload();
    await page.waitForSelector("#impus li");
    reloaded = await page.evaluate(() => ({
      storage: Object.fromEntries(Object.entries(sessionStorage)),
      impus: [...document.querySelectorAll("#impus li")].map((li) => li.textContent),
    }));
    reloaded.requested = requested.slice(before);
    // Registered again from the new WebSocket (same +sip.instance and reg-id):
    // the logout's unregistration then removes the only binding.
    await page.waitForFunction(settledIn, settled, { timeout: 15000 });
    reloaded.regState = await page.evaluate(() => document.getElementById("reg-state").dataset.state);
  }

  await page.locator("#logout").click();
  await page.waitForFunction(() => document.body.dataset.state === "signed-out");
  const afterLogout = await page.evaluate(() => ({
    storage: Object.fromEntries(Object.entries(sessionStorage)),
    loginVisible: !document.getElementById("login").closest("section").hidden,
    error: document.getElementById("error").hidden ? "" : document.getElementById("error").textContent,
  }));
  process.stdout.write(
    JSON.stringify({
      ...shown,
      forged,
      refreshed,
      reloaded,
      regevent,
      afterLogout,
      requested,
      sip,
      console: consoleLines,
    }) + "\n",
  );
} catch (err) {
  process.stderr.write(`browser_login: ${err.message}\n`);
  const page = context && context.pages()[0];
  if (page) {
    const where = await page
      .evaluate(() => ({
        url: location.href,
        reg: document.getElementById("reg-state")?.textContent,
        refreshes: document.getElementById("refreshes")?.textContent,
        error: document.getElementById("error")?.textContent,
      }))
      .catch(() => null);
    process.stderr.write(`  page: ${JSON.stringify(where)}\n`);
  }
  process.stderr.write(consoleLines.map((l) => `  console ${l}\n`).join(""));
  process.exitCode = 1;
} finally {
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
}
