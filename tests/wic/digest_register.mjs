// A WebRTC developer's client registering with IMS credentials (SIP Digest,
// TS 24.371 scenario 1) rather than a Bearer token: a third-party SIP library
// as published (not our WIC, not patched) in Debian's headless Chromium,
// configured with a username and a password, nothing else.
//
//   node digest_register.mjs <library> <wss-url> <impu> <impi> <password> [MODES]
//
// <library> is "sipjs" or "jssip":
//   sipjs  the sip.js package of src/webims/wic/node_modules, bundled here with
//          esbuild (an IIFE defining the global SIP): a UserAgent with
//          authorizationUsername/authorizationPassword, a Registerer with no
//          extra headers; register() until the answer to it, unregister().
//   jssip  the JsSIP bundle `make wic` builds (static/build/jssip.js, an ES
//          module with a default export): a JsSIP.UA with authorization_user,
//          password and register: false; start(), register() until
//          "registered" or "registrationFailed", unregister() until
//          "unregistered".
// The page that loads the library is served by this script from 127.0.0.1
// (Chromium's Local Network Access checks keep a page of about:blank or data:
// from opening a WebSocket to a loopback address).
//
// MODES, comma-separated: "hold", once registered, writes "hold: registered"
// on stderr and waits for a line on stdin (the test looks at the IMS core
// meanwhile); "refresh" then calls register() again, as the library's own
// refresh timer does, until the final answer on the wire; then, if still
// registered or not, the library unregisters.
//
// Prints one JSON object on stdout: the library, the version of its package
// ("package") and the one the library says of itself ("version"), what the
// library reported ("register", "refresh", "unregister": status and reason of
// the final answer and whether it then deems itself registered; "events": the
// Registerer's states or the UA's events, in order), "frames": every SIP
// message of the page's WebSocket as it travelled (direction and full text,
// the value of each Digest response masked), "ladder": each of them in
// short (start line, CSeq, the WWW-Authenticate values, the Authorization
// values with the response masked and, for Digest, "responseOk": whether
// the response is RFC 2617's for the configured password), the browser's
// console, and "error" when a step did not happen in time (exit status 1).
import { createHash } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";

import { JSSIP_BUNDLE, bundleSipJs, launch, require } from "./chromium.mjs";

const [library, server, impu, impi, password, mode] = process.argv.slice(2);
const modes = new Set((mode || "").split(",").filter(Boolean));
const STEP_MS = 15000;
const work = mkdtempSync(path.join(tmpdir(), "webims-digest-"));
const report = { library, events: [], frames: [], ladder: [], console: [] };

const md5 = (text) => createHash("md5").update(text).digest("hex");

// The parameters of a Digest credentials or challenge value.
function digestParams(value) {
  const params = {};
  for (const [, name, quoted, bare] of value.matchAll(/([\w-]+)\s*=\s*(?:"([^"]*)"|([^\s,]+))/g)) {
    params[name.toLowerCase()] = quoted ?? bare;
  }
  return params;
}

// Whether the response of these credentials is RFC 2617's (3.2.2.1) for the
// configured password.
function rfc2617(method, params) {
  const ha1 = md5(`${params.username}:${params.realm}:${password}`);
  const ha2 = md5(`${method}:${params.uri}`);
  const expected = params.qop
    ? md5(`${ha1}:${params.nonce}:${params.nc}:${params.cnonce}:${params.qop}:${ha2}`)
    : md5(`${ha1}:${params.nonce}:${ha2}`);
  return params.response === expected;
}

const masked = (text) => text.replace(/(response\s*=\s*)"[^"]*"/gi, '$1"<masked>"');

// One SIP message of a WebSocket frame: the masked text and its summary.
function record(dir, payload) {
  const text = String(payload);
  const lines = text.split("\r\n\r\n", 1)[0].split("\r\n");
  const values = (name) =>
    lines
      .filter((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`))
      .map((l) => l.slice(name.length + 1).trim());
  const method = lines[0].split(" ", 1)[0];
  report.frames.push({ dir, text: masked(text) });
  report.ladder.push({
    dir,
    start: lines[0],
    cseq: values("CSeq")[0] ?? null,
    wwwAuthenticate: values("WWW-Authenticate"),
    authorization: values("Authorization").map((value) => ({
      value: masked(value),
      ...(/^digest\s/i.test(value) ? { responseOk: rfc2617(method, digestParams(value)) } : {}),
    })),
  });
}

// The page of each library: its files, by path.
async function pageFiles() {
  if (library === "sipjs") {
    const outfile = await bundleSipJs(work);
    report.package = JSON.parse(readFileSync(require.resolve("sip.js/package.json"))).version;
    return {
      "/": '<!doctype html><title>SIP.js</title><link rel="icon" href="data:,"><script src="/lib.js"></script>',
      "/lib.js": readFileSync(outfile),
    };
  }
  if (library === "jssip") {
    report.package = JSON.parse(readFileSync(require.resolve("jssip/package.json"))).version;
    const load = 'import JsSIP from "/lib.js"; globalThis.JsSIP = JsSIP;';
    return {
      "/": `<!doctype html><title>JsSIP</title><link rel="icon" href="data:,"><script type="module">${load}</script>`,
      "/lib.js": readFileSync(JSSIP_BUNDLE),
    };
  }
  throw new Error(`unknown library ${library}: sipjs or jssip`);
}

// Serves files on 127.0.0.1; resolves to the origin.
async function serve(web, files) {
  web.on("request", (req, res) => {
    const body = files[req.url];
    const type = req.url === "/" ? "text/html" : "text/javascript";
    res.writeHead(body === undefined ? 404 : 200, { "Content-Type": body === undefined ? "text/plain" : type });
    res.end(body ?? "not found");
  });
  await once(web.listen(0, "127.0.0.1"), "listening");
  return `http://127.0.0.1:${web.address().port}`;
}

// Until the test writes a line on stdin.
async function go() {
  const lines = createInterface({ input: process.stdin });
  await once(lines, "line");
  lines.close();
}

// In the page, SIP.js: the registration as its documentation shows it.
async function sipjsRegister({ server, impu, impi, password, stepMs }) {
  const { UserAgent, Registerer } = globalThis.SIP;
  const run = (globalThis.run = { events: [] });
  const userAgent = new UserAgent({
    uri: UserAgent.makeURI(impu),
    transportOptions: { server },
    authorizationUsername: impi,
    authorizationPassword: password,
    logLevel: "warn",
  });
  await userAgent.start();
  const registerer = new Registerer(userAgent);
  registerer.stateChange.addListener((state) => run.events.push(state));
  Object.assign(run, { userAgent, registerer });
  const answer = await new Promise((resolve, reject) => {
    setTimeout(() => reject(new Error("no final answer to the REGISTER")), stepMs);
    const done = ({ message }) => resolve({ status: message.statusCode, reason: message.reasonPhrase });
    registerer.register({ requestDelegate: { onAccept: done, onReject: done } }).catch(reject);
  });
  return { ...answer, registered: registerer.state === "Registered", version: globalThis.SIP.version };
}

async function sipjsUnregister(stepMs) {
  const { registerer } = globalThis.run;
  const answer = await new Promise((resolve, reject) => {
    setTimeout(() => reject(new Error("no final answer to the unregistration")), stepMs);
    const done = ({ message }) => resolve({ status: message.statusCode, reason: message.reasonPhrase });
    registerer.unregister({ requestDelegate: { onAccept: done, onReject: done } }).catch(reject);
  });
  return { ...answer, registered: registerer.state === "Registered" };
}

async function sipjsStop() {
  const { userAgent, events } = globalThis.run;
  await userAgent.stop();
  return events;
}

// In the page, JsSIP: the registration as its documentation shows it.
async function jssipRegister({ server, impu, impi, password, stepMs }) {
  const { JsSIP } = globalThis;
  const run = (globalThis.run = { events: [] });
  const ua = new JsSIP.UA({
    sockets: [new JsSIP.WebSocketInterface(server)],
    uri: impu,
    authorization_user: impi,
    password,
    register: false,
  });
  const outcome = (event) => ({
    status: event.response ? event.response.status_code : null,
    reason: event.response ? event.response.reason_phrase : null,
    cause: event.cause ?? null,
  });
  run.settle = (wanted) =>
    new Promise((resolve, reject) => {
      setTimeout(() => reject(new Error(`no ${wanted.join(" or ")} event`)), stepMs);
      for (const name of wanted) ua.once(name, (event) => resolve({ event: name, ...outcome(event) }));
    });
  for (const name of ["connected", "disconnected", "registered", "unregistered", "registrationFailed"]) {
    ua.on(name, () => run.events.push(name));
  }
  run.ua = ua;
  const connected = run.settle(["connected"]);
  ua.start();
  await connected;
  const settled = run.settle(["registered", "registrationFailed"]);
  ua.register();
  const answer = await settled;
  return { ...answer, registered: ua.isRegistered(), version: globalThis.JsSIP.version };
}

async function jssipUnregister() {
  const { ua, settle } = globalThis.run;
  const settled = settle(["unregistered"]);
  ua.unregister();
  return { ...(await settled), registered: ua.isRegistered() };
}

async function jssipStop() {
  const { ua, events } = globalThis.run;
  ua.stop();
  await new Promise((resolve) => setTimeout(resolve, 300));
  return events;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The refresh of the registration (a second register() of the library),
// until the final answer to it on the wire, or the library giving up.
async function refresh(page) {
  const since = report.ladder.length;
  await page.evaluate(() => {
    const run = globalThis.run;
    run.failed = null;
    if (run.registerer) {
      run.registerer.register().catch((err) => (run.failed = err.message));
      run.registerer.stateChange.addListener((state) => state !== "Registered" && (run.failed = state));
    } else {
      run.ua.once("registrationFailed", (event) => (run.failed = event.cause));
      run.ua.register();
    }
  });
  const deadline = Date.now() + STEP_MS;
  for (;;) {
    await sleep(50);
    const failed = await page.evaluate(() => globalThis.run.failed);
    const answer = report.ladder
      .slice(since)
      .find((m) => m.dir === "received" && /^SIP\/2\.0 (?!1|401 |407 )\d{3} /.test(m.start));
    if (answer || failed) {
      const [, status, reason] = answer ? /^SIP\/2\.0 (\d{3}) (.*)$/.exec(answer.start) : [];
      const registered = await page.evaluate(() =>
        globalThis.run.registerer ? globalThis.run.registerer.state === "Registered" : globalThis.run.ua.isRegistered(),
      );
      return { status: status ? Number(status) : null, reason: reason ?? null, failed, registered };
    }
    if (Date.now() > deadline) throw new Error("no final answer to the refresh");
  }
}

const steps = {
  sipjs: { register: sipjsRegister, unregister: sipjsUnregister, stop: sipjsStop },
  jssip: { register: jssipRegister, unregister: jssipUnregister, stop: jssipStop },
};

let context;
const web = createServer();
try {
  const origin = await serve(web, await pageFiles());
  const step = steps[library];
  context = await launch(path.join(work, "profile"));
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(STEP_MS);
  page.on("console", (msg) => report.console.push(`${msg.type()}: ${msg.text()}`));
  page.on("pageerror", (err) => report.console.push(`pageerror: ${err.message}`));
  page.on("websocket", (ws) => {
    report.websocket = ws.url();
    ws.on("framesent", (frame) => record("sent", frame.payload));
    ws.on("framereceived", (frame) => record("received", frame.payload));
  });
  await page.goto(`${origin}/`);
  await page.waitForFunction((name) => globalThis[name] !== undefined, library === "sipjs" ? "SIP" : "JsSIP");

  report.register = await page.evaluate(step.register, { server, impu, impi, password, stepMs: STEP_MS });
  report.version = report.register.version;
  if (report.register.registered) {
    if (modes.has("hold")) {
      process.stderr.write("hold: registered\n");
      await go();
    }
    if (modes.has("refresh")) report.refresh = await refresh(page);
    report.unregister = await page.evaluate(step.unregister, STEP_MS);
  }
  report.events = await page.evaluate(step.stop);
  await sleep(200); // the last frame events of the WebSocket
} catch (err) {
  Object.assign(report, { error: err.message });
  process.exitCode = 1;
} finally {
  await context?.close().catch(() => {});
  web.close();
  rmSync(work, { recursive: true, force: true });
  console.log(JSON.stringify(report));
}
