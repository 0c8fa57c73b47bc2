// Two people call each other with the WIC page, as they would: each in a
// browser of their own (Debian's headless Chromium, a profile each), each
// logs in on the WWSF and waits for "registered"; the caller types the
// callee's user part in "To" and presses "Call"; the callee's page shows the
// incoming call and its caller, and the callee presses "Answer"; both pages
// show "in-call" and play each other's audio (a fake microphone); the caller
// presses "Hang up"; both show "ended"; each opens the WWSF's /trace page (in
// another tab) for the ladders of their last registration and call; both log
// out.
//
//   node wic_call.mjs <base-url> <caller-user> <callee-user> <to> [MODE]
//
// <to> is what the caller types.  MODE "decline": the callee presses
// "Decline" instead of "Answer", and the caller's page must end the call.
//
// Chromium gets a fake microphone (chromium.mjs: MEDIA_FLAGS).
//
// Prints one JSON object on stdout: for "caller" and "callee", the call
// states the page showed (state and detail, in order), the detail shown for
// the incoming call, the inbound audio counters and ICE/DTLS states while in
// the call, the headings and ladders of their /trace page ("trace"), the SIP
// messages of the page's WebSocket (direction and full text),
// the console; "error" when a step did not happen in time (exit status 1).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { FLAGS, MEDIA_FLAGS, launch } from "./chromium.mjs";

const [base, callerUser, calleeUser, to, mode] = process.argv.slice(2);
const STEP_MS = 20000;
const work = mkdtempSync(path.join(tmpdir(), "webims-wic-call-"));
const report = {};
const opened = [];

async function step(what, promise) {
  report.step = what;
  return promise;
}


// A browser of its own for `user`, logged in and registered.
async function person(name, user) {
  const entry = { user, frames: [], console: [] };
  report[name] = entry;
  const context = await launch(path.join(work, name), { args: [...FLAGS, ...MEDIA_FLAGS] });
  const page = context.pages()[0] || (await context.newPage());
  const side = { name, context, page, entry };
  opened.push(side);
  page.setDefaultTimeout(STEP_MS);
  page.on("console", (m) => entry.console.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => entry.console.push(`pageerror: ${e.message}`));
  page.on("websocket", (ws) => {
    ws.on("framesent", (f) => entry.frames.push({ dir: "sent", text: String(f.payload) }));
    ws.on("framereceived", (f) => entry.frames.push({ dir: "received", text: String(f.payload) }));
  });
  await step(`${name}: log in`, page.goto(`${base}/`));
  await page.locator("#login").click();
  await page.waitForURL((url) => url.pathname === "/login");
  await page.locator("form input[type=text], form input:not([type])").first().fill(user);
  await page.locator("form input[type=password]").first().fill(`${user}-secret`);
  await page.locator("form input[type=password]").first().press("Enter");
  await step(
    `${name}: registered`,
    page.waitForFunction(() => document.getElementById("reg-state").dataset.state === "registered"),
  );
  return side;
}

// Until the page shows one of `states`.
function until(side, states) {
  return step(
    `${side.name}: ${states.join(" or ")}`,
    side.page.waitForFunction((wanted) => wanted.includes(document.getElementById("call-state").dataset.state), states),
  );
}

// In the page: until audio has come in; the counters and states.
async function pageMedia(stepMs) {
  const deadline = Date.now() + stepMs;
  let seen = {};
  while (Date.now() < deadline) {
    const pc = globalThis.webimsWic.calls.connection;
    const audio = document.getElementById("remote-audio");
    seen = { ice: pc && pc.iceConnectionState, packetsReceived: 0, bytesReceived: 0, playing: Boolean(audio.srcObject) };
    if (pc) {
      (await pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "audio") {
          seen.packetsReceived += s.packetsReceived;
          seen.bytesReceived += s.bytesReceived;
        }
        if (s.type === "transport") seen.dtls = s.dtlsState;
      });
      if (seen.packetsReceived >= 10 && seen.playing) break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return seen;
}

try {
  const a = await person("caller", callerUser);
  const b = await person("callee", calleeUser);
  await a.page.locator("#call-target").fill(to);
  await a.page.locator("#call").click();
  await until(b, ["incoming"]);
  b.entry.incoming = await b.page.locator("#call-detail").textContent();
  if (mode === "decline") {
    b.entry.declineLabel = await b.page.locator("#hangup").textContent();
    await b.page.locator("#hangup").click();
    await until(a, ["ended"]);
    await until(b, ["ended"]);
  } else {
    await b.page.locator("#answer").click();
    await until(a, ["in-call"]);
    await until(b, ["in-call"]);
    for (const s of [a, b]) {
      s.entry.media = await step(`${s.name}: audio`, s.page.evaluate(pageMedia, STEP_MS));
    }
    await a.page.locator("#hangup").click();
    await until(a, ["ended"]);
    await until(b, ["ended"]);
  }
  for (const s of [a, b]) {
    s.entry.detail = await s.page.locator("#call-detail").textContent();
    // The person's own trace page, in another tab of the same browser (the WIC
    // page stays registered meanwhile).
    const tab = await s.context.newPage();
    await step(`${s.name}: /trace`, tab.goto(`${base}/trace`));
    s.entry.trace = {
      headings: await tab.locator("h2").allTextContents(),
      ladders: await tab.locator("pre.ladder").allTextContents(),
    };
    await tab.close();
    await step(`${s.name}: log out`, s.page.locator("#logout").click());
    await s.page.waitForFunction(() => document.body.dataset.state === "signed-out");
  }
  delete report.step;
} catch (err) {
  report.error = `${report.step ?? "setup"}: ${err.message}`;
  process.exitCode = 1;
} finally {
  for (const s of opened) {
    s.entry.states = await s.page.evaluate(() => globalThis.webimsWic.callStates).catch(() => null);
    await s.context.close().catch(() => {});
  }
  rmSync(work, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify(report)}\n`);
