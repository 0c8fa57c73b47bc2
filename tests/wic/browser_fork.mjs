// Calls to an IMPU registered from two browsers, and calls that cannot be
// completed, with JsSIP as published in Debian's headless Chromium: page A
// registers user1, pages B1 and B2 both register user2 (each its own token,
// WebSocket and contact).  Scenarios, in order:
//
//   fork     A calls user2: the S-CSCF forks to both contacts, both ring; B2
//            answers after ANSWER_MS, B1 never does and gets a CANCEL; then A
//            hangs up;
//   cancel   A calls user2 again (nobody answers now) and cancels while both
//            ring;
//   unknown  A calls an IMPU that no subscriber has;
//   offline  B1 and B2 close their pages (their WebSockets go), then A calls
//            user2 twice.
//
//   node browser_fork.mjs <wss-url> <user1-token> <user2-token> <user2-token>
//
// Prints one JSON object on stdout: per scenario and page, the JsSIP session
// events ("incoming", "progress", "confirmed", "failed:<cause>:<status>", ...)
// and the start lines of the SIP messages of the page's WebSocket ("-> " sent,
// "<- " received); "error" when a step did not happen in time (exit status 1).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { once } from "node:events";
import { tmpdir } from "node:os";
import path from "node:path";

import { FLAGS, JSSIP_BUNDLE, MEDIA_FLAGS, jssipRegister, launch } from "./chromium.mjs";

const [server, token1, token2a, token2b] = process.argv.slice(2);
const USER1 = "sip:user1_public1@home1.net";
const USER2 = "sip:user2_public1@home1.net";
const NOBODY = "sip:nobody_public1@home1.net";
const ANSWER_MS = 1500;
const STEP_MS = 20000;
const work = mkdtempSync(path.join(tmpdir(), "webims-fork-"));
const report = { scenarios: {} };
const pages = {};

async function serve(web) {
  web.on("request", (req, res) => {
    if (req.url === "/jssip.js") {
      res.writeHead(200, { "Content-Type": "text/javascript" });
      res.end(readFileSync(JSSIP_BUNDLE));
      return;
    }
    res.writeHead(200, { "Content-Type": "text/html" });
    res.end('<!doctype html><title>JsSIP</title><link rel="icon" href="data:,">' +
      '<script type="module">import JsSIP from "/jssip.js"; globalThis.JsSIP = JsSIP;</script>');
  });
  await once(web.listen(0, "127.0.0.1"), "listening");
  return `http://127.0.0.1:${web.address().port}`;
}

// In the page, once registered (chromium.mjs: jssipRegister): every incoming
// call rings (180) and, while `run.answerMs` is set, is answered that long
// after.
function ringAndAnswer(answerMs) {
  const run = globalThis.run;
  run.answerMs = answerMs;
  run.ua.on("newRTCSession", ({ session, originator }) => {
    run.session = session;
    for (const name of ["progress", "confirmed", "ended", "failed"]) {
      session.on(name, (e) => {
        const status = e && e.message && e.message.status_code ? e.message.status_code : "";
        run.events.push(name === "failed" || name === "ended" ? `${name}:${e.cause}:${status}` : name);
      });
    }
    if (originator === "remote") {
      run.events.push("incoming");
      if (run.answerMs) {
        setTimeout(() => session.isEnded() || session.answer({ mediaConstraints: { audio: true } }), run.answerMs);
      }
    }
  });
}

async function open(context, origin, name, impu, token, answerMs) {
  const page = await context.newPage();
  const lines = [];
  page.on("websocket", (ws) => {
    ws.on("framesent", (f) => lines.push(`-> ${String(f.payload).split("\r\n", 1)[0]}`));
    ws.on("framereceived", (f) => lines.push(`<- ${String(f.payload).split("\r\n", 1)[0]}`));
  });
  page.on("pageerror", (e) => lines.push(`pageerror: ${e.message}`));
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => globalThis.JsSIP);
  report.step = `register ${name}`;
  const outcome = await page.evaluate(jssipRegister, { server, impu, token, stepMs: STEP_MS });
  if (!outcome.registered) throw new Error(`not registered: ${JSON.stringify(outcome)}`);
  await page.evaluate(ringAndAnswer, answerMs);
  pages[name] = { page, lines };
}

// Clears what the pages saw, runs `action`, waits until `done` holds for A's
// events (then a moment for the rest), and records the scenario.
async function scenario(name, action, done) {
  report.step = name;
  for (const p of Object.values(pages)) {
    p.lines.length = 0;
    if (!p.page.isClosed()) await p.page.evaluate(() => (globalThis.run.events = []));
  }
  await action();
  await pages.A.page.waitForFunction(done, null, { timeout: STEP_MS });
  await new Promise((resolve) => setTimeout(resolve, 500));
  const seen = {};
  for (const [who, p] of Object.entries(pages)) {
    const events = p.page.isClosed() ? null : await p.page.evaluate(() => globalThis.run.events);
    seen[who] = { events, lines: [...p.lines] };
  }
  report.scenarios[name] = seen;
}

const call = (target) => pages.A.page.evaluate((t) => globalThis.run.ua.call(t, { mediaConstraints: { audio: true } }), target);
const ended = () => globalThis.run.events.some((e) => e.startsWith("failed") || e.startsWith("ended"));

let context;
const web = createServer();
try {
  const origin = await serve(web);
  context = await launch(path.join(work, "profile"), { args: [...FLAGS, ...MEDIA_FLAGS] });
  await open(context, origin, "A", USER1, token1, 0);
  await open(context, origin, "B1", USER2, token2a, 0);
  await open(context, origin, "B2", USER2, token2b, ANSWER_MS);

  await scenario("fork", () => call(USER2), () => globalThis.run.events.includes("confirmed"));
  report.step = "fork: hang up";
  await pages.A.page.evaluate(() => globalThis.run.session.terminate());
  await pages.B2.page.waitForFunction(ended, null, { timeout: STEP_MS });

  await scenario(
    "cancel",
    async () => {
      await pages.B2.page.evaluate(() => (globalThis.run.answerMs = 0));
      await call(USER2);
      // Both ring, then the caller gives up.
      await pages.B1.page.waitForFunction(() => globalThis.run.events.includes("incoming"), null, { timeout: STEP_MS });
      await pages.B2.page.waitForFunction(() => globalThis.run.events.includes("incoming"), null, { timeout: STEP_MS });
      await pages.A.page.evaluate(() => globalThis.run.session.terminate());
    },
    ended,
  );

  await scenario("unknown", () => call(NOBODY), ended);

  report.step = "offline: close B1 and B2";
  await pages.B1.page.close();
  await pages.B2.page.close();
  await scenario("offline", () => call(USER2), ended);
  await scenario("offline again", () => call(USER2), ended);
  delete report.step;
} catch (err) {
  report.error = `${report.step ?? "setup"}: ${err.message}`;
  process.exitCode = 1;
} finally {
  if (context) await context.close().catch(() => {});
  web.close();
  rmSync(work, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify(report)}\n`);
