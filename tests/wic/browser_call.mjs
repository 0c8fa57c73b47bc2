// A call between two browsers through the IMS core (SPEC.md §9.7): two pages
// of Debian's headless Chromium, each running a third-party SIP library as
// published on npm, each registered with its own Bearer token; the caller
// calls the callee's IMPU, the callee answers, audio flows between the two
// RTCPeerConnections (ICE and DTLS-SRTP end to end, no media anchoring), then
// the caller hangs up and both unregister.
//
//   node browser_call.mjs <wss-url> <caller> <callee>
//
// <caller> and <callee> are LIBRARY,IMPU,TOKEN with LIBRARY "jssip" (the
// JsSIP bundle `make wic` builds, with `authorization_jwt`, which JsSIP puts
// in the Authorization header of every request it sends) or "sipjs" (the
// sip.js package bundled here by esbuild; the token in the extraHeaders of its
// Registerer, Inviter and Invitation).
//
// Chromium gets a fake microphone (chromium.mjs: MEDIA_FLAGS).
//
// Prints one JSON object on stdout: for each side ("caller", "callee") the
// library and its version, the registration's outcome, the call's events in
// order, the local and remote SDP, the ICE state and the inbound RTP counters
// once audio flowed, every SIP message of the page's WebSocket (direction and
// full text) and the page's console; and "error" when a step did not happen in
// time (exit status 1 then).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { once } from "node:events";
import { tmpdir } from "node:os";
import path from "node:path";

import { FLAGS, JSSIP_BUNDLE, MEDIA_FLAGS, bundleSipJs, jssipRegister, launch } from "./chromium.mjs";

const [server, callerArg, calleeArg] = process.argv.slice(2);
const STEP_MS = 20000;

function side(arg) {
  const [library, impu, token] = (arg || "").split(",");
  if (!["jssip", "sipjs"].includes(library) || !impu || !token) {
    throw new Error(`expected LIBRARY,IMPU,TOKEN with LIBRARY jssip or sipjs, got ${arg}`);
  }
  return { library, impu, token };
}

const work = mkdtempSync(path.join(tmpdir(), "webims-call-"));
const report = {};

// The two libraries' pages, on 127.0.0.1 (a page of about:blank may not open
// a WebSocket to a loopback address); resolves to the origin.
async function serve(web) {
  const sipjs = await bundleSipJs(work);
  const files = {
    "/jssip.html": [
      "text/html",
      '<!doctype html><title>JsSIP</title><link rel="icon" href="data:,">' +
        '<script type="module">import JsSIP from "/jssip.js"; globalThis.JsSIP = JsSIP;</script>',
    ],
    "/sipjs.html": [
      "text/html",
      '<!doctype html><title>SIP.js</title><link rel="icon" href="data:,"><script src="/sipjs.js"></script>',
    ],
    "/jssip.js": ["text/javascript", readFileSync(JSSIP_BUNDLE)],
    "/sipjs.js": ["text/javascript", readFileSync(sipjs)],
  };
  web.on("request", (req, res) => {
    const [type, body] = files[req.url] || ["text/plain", "not found"];
    res.writeHead(files[req.url] ? 200 : 404, { "Content-Type": type });
    res.end(body);
  });
  await once(web.listen(0, "127.0.0.1"), "listening");
  return `http://127.0.0.1:${web.address().port}`;
}

// -- in the page: each library as its documentation shows it ---------------------

// JsSIP, once registered (chromium.mjs: jssipRegister): every call the page
// receives is answered with audio.  The page's state is globalThis.run:
// {ua, events, session} (JsSIP's RTCPeerConnection is its session's
// "connection").
function jssipAnswerCalls() {
  const run = globalThis.run;
  const log = (event) => run.events.push(event);
  run.ua.on("newRTCSession", ({ session, originator }) => {
    run.session = session;
    for (const name of ["progress", "accepted", "confirmed", "ended", "failed"]) {
      session.on(name, (e) => log({ event: name, cause: e && e.cause ? e.cause : null }));
    }
    if (originator === "remote") {
      log({ event: "incoming" });
      session.answer({ mediaConstraints: { audio: true, video: false } });
    }
  });
}

// SIP.js: starts and registers; resolves to the REGISTER's outcome.  Every
// call the page receives is answered with audio.  The page's state is
// globalThis.run: {events, session, pc}.
async function sipjsRegister({ server, impu, token, stepMs }) {
  const run = (globalThis.run = { events: [] });
  const log = (event) => run.events.push(event);
  const timeout = (what) => new Promise((_, reject) => setTimeout(() => reject(new Error(what)), stepMs));
  const { UserAgent, Registerer, SessionState } = globalThis.SIP;
  const auth = [`Authorization: Bearer ${token}`];
  const watch = (session) => {
    run.session = session;
    session.stateChange.addListener((state) => {
      log({ event: state });
      if (state === SessionState.Established) {
        run.pc = session.sessionDescriptionHandler.peerConnection;
      }
    });
  };
  const userAgent = new UserAgent({
    uri: UserAgent.makeURI(impu),
    transportOptions: { server },
    logLevel: "warn",
    delegate: {
      onInvite(invitation) {
        log({ event: "incoming" });
        watch(invitation);
        invitation.accept({
          extraHeaders: auth,
          sessionDescriptionHandlerOptions: { constraints: { audio: true, video: false } },
        });
      },
    },
  });
  run.userAgent = userAgent;
  run.version = globalThis.SIP.version;
  run.auth = auth;
  run.watch = watch;
  await userAgent.start();
  const registerer = new Registerer(userAgent, { extraHeaders: auth });
  run.registerer = registerer;
  const outcome = new Promise((resolve) => {
    const done = ({ message }) =>
      resolve({ status: message.statusCode, registered: registerer.state === "Registered" });
    registerer.register({ requestDelegate: { onAccept: done, onReject: done } });
  });
  const answer = await Promise.race([outcome, timeout("no answer to the REGISTER")]);
  // SIP.js changes its state after the delegate ran.
  await new Promise((resolve) => setTimeout(resolve, 0));
  return { ...answer, registered: registerer.state === "Registered" };
}

// Calls `target` with audio; resolves once the call is confirmed (or failed).
async function pageCall({ library, target, stepMs }) {
  const run = globalThis.run;
  const settled = () =>
    run.events.some((e) => ["confirmed", "failed", "ended", "Established", "Terminated"].includes(e.event));
  if (library === "jssip") {
    run.ua.call(target, { mediaConstraints: { audio: true, video: false } });
  } else {
    const { Inviter } = globalThis.SIP;
    const inviter = new Inviter(run.userAgent, globalThis.SIP.UserAgent.makeURI(target), {
      extraHeaders: run.auth,
      sessionDescriptionHandlerOptions: { constraints: { audio: true, video: false } },
    });
    run.watch(inviter);
    inviter.invite({
      requestDelegate: {
        onReject: ({ message }) => run.events.push({ event: "rejected", status: message.statusCode }),
      },
    });
  }
  const deadline = Date.now() + stepMs;
  while (!settled() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return run.events;
}

// Until audio has come in (inbound RTP with bytes); the ICE state and counters.
async function pageMedia({ stepMs }) {
  const deadline = Date.now() + stepMs;
  let seen = { ice: null, bytesReceived: 0, packetsReceived: 0 };
  const connection = () => globalThis.run.pc ?? globalThis.run.session?.connection;
  while (Date.now() < deadline) {
    const pc = connection();
    if (pc) {
      seen = { ice: pc.iceConnectionState, bytesReceived: 0, packetsReceived: 0 };
      (await pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "audio") {
          seen.bytesReceived += s.bytesReceived;
          seen.packetsReceived += s.packetsReceived;
        }
        if (s.type === "transport") seen.dtls = s.dtlsState;
      });
      if (seen.packetsReceived >= 10) break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const pc = connection();
  return { ...seen, localSdp: pc?.localDescription?.sdp ?? null, remoteSdp: pc?.remoteDescription?.sdp ?? null };
}

// The caller hangs up.
async function pageHangUp({ library }) {
  const session = globalThis.run.session;
  if (library === "jssip") session.terminate();
  else await session.bye({ requestOptions: { extraHeaders: globalThis.run.auth } });
}

// Until the call has ended on this side.
async function pageEnded({ stepMs }) {
  const deadline = Date.now() + stepMs;
  const ended = () => globalThis.run.events.some((e) => ["ended", "failed", "Terminated"].includes(e.event));
  while (!ended() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return globalThis.run.events;
}

// Unregisters and stops; resolves to the unregistration's final status.
async function pageUnregister({ library, stepMs }) {
  const run = globalThis.run;
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error("no unregistration")), stepMs));
  if (library === "jssip") {
    const done = new Promise((resolve) => {
      run.ua.once("unregistered", (e) => resolve({ status: e && e.response ? e.response.status_code : null }));
    });
    run.ua.unregister();
    const outcome = await Promise.race([done, timeout]);
    run.ua.stop();
    return outcome;
  }
  const outcome = await Promise.race([
    new Promise((resolve) => {
      const done = ({ message }) => resolve({ status: message.statusCode });
      run.registerer.unregister({
        requestOptions: { extraHeaders: run.auth },
        requestDelegate: { onAccept: done, onReject: done },
      });
    }),
    timeout,
  ]);
  await run.userAgent.stop();
  return outcome;
}

// -- the driver ------------------------------------------------------------------

async function openSide(context, origin, name, spec) {
  const entry = { library: spec.library, impu: spec.impu, frames: [], console: [] };
  report[name] = entry;
  const page = await context.newPage();
  page.on("console", (m) => entry.console.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => entry.console.push(`pageerror: ${e.message}`));
  page.on("websocket", (ws) => {
    ws.on("framesent", (f) => entry.frames.push({ dir: "sent", text: String(f.payload) }));
    ws.on("framereceived", (f) => entry.frames.push({ dir: "received", text: String(f.payload) }));
  });
  await page.goto(`${origin}/${spec.library}.html`);
  const side = { page, entry, spec };
  opened.push(side);
  await page.waitForFunction(() => globalThis.JsSIP || globalThis.SIP, null, { timeout: STEP_MS });
  return side;
}

async function step(what, promise) {
  report.step = what;
  return promise;
}

let context;
const opened = [];
const web = createServer();
try {
  const caller = side(callerArg);
  const callee = side(calleeArg);
  const origin = await serve(web);
  context = await launch(path.join(work, "profile"), { args: [...FLAGS, ...MEDIA_FLAGS] });
  const a = await openSide(context, origin, "caller", caller);
  const b = await openSide(context, origin, "callee", callee);
  for (const s of [a, b]) {
    const args = { server, impu: s.spec.impu, token: s.spec.token, stepMs: STEP_MS };
    const jssip = s.spec.library === "jssip";
    s.entry.register = await step(`register ${s.spec.impu}`, s.page.evaluate(jssip ? jssipRegister : sipjsRegister, args));
    if (jssip) await s.page.evaluate(jssipAnswerCalls);
    s.entry.version = await s.page.evaluate(() => globalThis.run.version);
    if (!s.entry.register.registered) throw new Error(`${s.spec.impu} did not register`);
  }
  await step("call", a.page.evaluate(pageCall, { library: caller.library, target: callee.impu, stepMs: STEP_MS }));
  // The callee's side settles when the ACK reaches it.
  const answered = () =>
    globalThis.run.events.some((e) => ["confirmed", "Established", "failed", "Terminated"].includes(e.event));
  await step("answer", b.page.waitForFunction(answered, null, { timeout: STEP_MS }));
  for (const s of [a, b]) {
    s.entry.media = await step(`media at ${s.spec.impu}`, s.page.evaluate(pageMedia, { stepMs: STEP_MS }));
  }
  await step("hang up", a.page.evaluate(pageHangUp, { library: caller.library }));
  for (const s of [a, b]) {
    s.entry.events = await step(`end at ${s.spec.impu}`, s.page.evaluate(pageEnded, { stepMs: STEP_MS }));
  }
  for (const s of [a, b]) {
    s.entry.unregister = await step(
      `unregister ${s.spec.impu}`,
      s.page.evaluate(pageUnregister, { library: s.spec.library, stepMs: STEP_MS }),
    );
  }
  delete report.step;
} catch (err) {
  report.error = `${report.step ?? "setup"}: ${err.message}`;
  for (const s of opened) {
    // What the page had seen of the call when the step failed.
    s.entry.events ??= await s.page.evaluate(() => globalThis.run?.events ?? null).catch(() => null);
  }
  process.exitCode = 1;
} finally {
  if (context) await context.close().catch(() => {});
  web.close();
  rmSync(work, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify(report)}\n`);
