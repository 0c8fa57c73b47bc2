// An outside WebRTC developer's client: the SIP.js library as published on
// npm (not our WIC, not patched), in Debian's headless Chromium, registering
// an IMS identity through the eP-CSCF with a Bearer token.
//
//   node sipjs_register.mjs <wss-url> <impu> <token> [MODES]
//
// The sip.js package of src/webims/wic/node_modules is bundled with esbuild
// (an IIFE defining the global SIP) into a temporary directory and served,
// with a page that loads it, from 127.0.0.1 by this script: a developer's
// page on a local web server.  (Chromium's Local Network Access checks block
// a page of about:blank or data: from opening a WebSocket to a loopback
// address.)  There a SIP.js UserAgent (transportOptions.server = the wss://
// URL) and a Registerer whose extraHeaders carry
// "Authorization: Bearer <token>" register the IMPU.
//
// MODES, comma-separated: "outbound" gives the Registerer a regId (SIP.js
// then adds reg-id and +sip.instance to its Contact, RFC 5626); "hold", once
// registered, writes "hold: registered" on stderr and waits for a line on
// stdin (the test looks at the IMS core meanwhile).  Then, if registered, the
// Registerer unregisters, with the same token in its request options (SIP.js
// sends a Registerer's extraHeaders with its REGISTERs, not with its
// unregistration).
//
// Prints one JSON object on stdout: the version of the sip.js package and
// the one the library says of itself (SIP.version), the Registerer's
// states in order, the status of the answer to the registration and to the
// unregistration, every SIP message of the page's WebSockets as it travelled
// (direction and full text), the browser's console, and "error" when a step
// did not happen in time (exit status 1 then).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";

import { bundleSipJs, launch, nextLine, require } from "./chromium.mjs";

const [server, impu, token, mode] = process.argv.slice(2);
const modes = new Set((mode || "").split(",").filter(Boolean));
const STEP_MS = 15000;

const work = mkdtempSync(path.join(tmpdir(), "webims-sipjs-"));
const frames = [];
const consoleLines = [];
const report = { modes: [...modes], states: [], frames, console: consoleLines };

// The developer's page and the bundle, on 127.0.0.1; resolves to its origin.
function servePage(server, script) {
  const files = {
    "/": ["text/html", '<!doctype html><title>SIP.js</title><link rel="icon" href="data:,"><script src="/sip.js"></script>'],
    "/sip.js": ["text/javascript", readFileSync(script)],
  };
  server.on("request", (req, res) => {
    const [type, body] = files[req.url] || ["text/plain", "not found"];
    res.writeHead(files[req.url] ? 200 : 404, { "Content-Type": type });
    res.end(body);
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${server.address().port}`));
  });
}

let context;
const web = createServer();
try {
  const origin = await servePage(web, await bundleSipJs(work));
  report.package = JSON.parse(readFileSync(require.resolve("sip.js/package.json"))).version;
  context = await launch(path.join(work, "profile"));
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(STEP_MS);
  page.on("console", (msg) => consoleLines.push(`${msg.type()}: ${msg.text()}`));
  page.on("pageerror", (err) => consoleLines.push(`pageerror: ${err.message}`));
  page.on("websocket", (ws) => {
    report.websocket = ws.url();
    ws.on("framesent", (frame) => frames.push({ dir: "sent", text: String(frame.payload) }));
    ws.on("framereceived", (frame) => frames.push({ dir: "received", text: String(frame.payload) }));
  });
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => globalThis.SIP !== undefined);
  report.version = await page.evaluate(() => globalThis.SIP.version);

  // The registration, as the SIP.js documentation shows it.
  report.register = await page.evaluate(
    async ({ server, impu, token, outbound, stepMs }) => {
      const { UserAgent, Registerer } = globalThis.SIP;
      const run = (globalThis.sipjsRun = { states: [] });
      const userAgent = new UserAgent({
        uri: UserAgent.makeURI(impu),
        transportOptions: { server },
        logLevel: "warn",
      });
      await userAgent.start();
      const registerer = new Registerer(userAgent, {
        extraHeaders: [`Authorization: Bearer ${token}`],
        ...(outbound ? { regId: 1 } : {}),
      });
      registerer.stateChange.addListener((state) => run.states.push(state));
      Object.assign(run, { userAgent, registerer, token });
      const answer = await new Promise((resolve, reject) => {
        setTimeout(() => reject(new Error("no final answer to the REGISTER")), stepMs);
        const done = ({ message }) => resolve({ status: message.statusCode, reason: message.reasonPhrase });
        registerer.register({ requestDelegate: { onAccept: done, onReject: done } }).catch(reject);
      });
      return { ...answer, state: registerer.state, instanceId: userAgent.instanceId };
    },
    { server, impu, token, outbound: modes.has("outbound"), stepMs: STEP_MS },
  );
  const registered = report.register.status === 200;
  if (registered) {
    await page.waitForFunction(() => globalThis.sipjsRun.registerer.state === "Registered");
    if (modes.has("hold")) {
      process.stderr.write("hold: registered\n");
      await nextLine();
    }
    report.unregister = await page.evaluate(async (stepMs) => {
      const { registerer, token } = globalThis.sipjsRun;
      const answer = await new Promise((resolve, reject) => {
        setTimeout(() => reject(new Error("no final answer to the unregistration")), stepMs);
        const done = ({ message }) => resolve({ status: message.statusCode, reason: message.reasonPhrase });
        registerer
          .unregister({
            requestOptions: { extraHeaders: [`Authorization: Bearer ${token}`] },
            requestDelegate: { onAccept: done, onReject: done },
          })
          .catch(reject);
      });
      return { ...answer, state: registerer.state };
    }, STEP_MS);
  }
  report.states = await page.evaluate(async () => {
    const { userAgent, states } = globalThis.sipjsRun;
    await userAgent.stop();
    return states;
  });
  // Let the last frame events of the WebSocket reach us.
  await page.waitForTimeout(200);
} catch (err) {
  report.error = err.message;
  process.exitCode = 1;
} finally {
  if (context) await context.close().catch(() => {});
  web.close();
  rmSync(work, { recursive: true, force: true });
  process.stdout.write(JSON.stringify(report) + "\n");
}
