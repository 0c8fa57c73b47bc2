// What the browser drivers of the WIC tests share: Debian's Chromium launched
// through playwright-core with the flags every browser test uses (a profile
// directory of the driver's own) and those of the tests that call (a fake
// microphone), SIP.js bundled for a page, JsSIP's bundle and its registration
// in a page, and the next line the test writes on the driver's stdin.
import { createRequire } from "node:module";
import path from "node:path";

export const require = createRequire(new URL("../../src/webims/wic/package.json", import.meta.url));
const { chromium } = require("playwright-core");

export const CHROMIUM = process.env.WEBIMS_CHROMIUM || "/usr/bin/chromium";
export const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

// For the drivers whose pages call: a fake microphone, the permission to use
// it, and ICE candidates on loopback (without this flag WebRTC gathers none on
// a machine, or a network namespace, whose only interface is loopback).
export const MEDIA_FLAGS = [
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
  "--allow-loopback-in-peer-connection",
];

// The JsSIP bundle `make wic` builds (an ES module with a default export).
export const JSSIP_BUNDLE = new URL("../../src/webims/wic/static/build/jssip.js", import.meta.url);

// A persistent context is how Playwright takes a user-data-dir of our own.
export function launch(profile, options = {}) {
  return chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    ignoreHTTPSErrors: true,
    timeout: 30000,
    ...options,
  });
}

// The sip.js package as published, bundled by esbuild into one script that
// defines the global SIP; resolves to the file written in `dir`.
export async function bundleSipJs(dir) {
  const { build } = require("esbuild");
  const outfile = path.join(dir, "sip.iife.js");
  await build({
    entryPoints: [require.resolve("sip.js")],
    outfile,
    bundle: true,
    format: "iife",
    globalName: "SIP",
    platform: "browser",
    target: ["es2020"],
    logLevel: "warning",
  });
  return outfile;
}

// The next line the test writes on stdin (mode "hold": "go" once it has looked).
export async function nextLine() {
  process.stdin.resume();
  const line = await new Promise((resolve) => process.stdin.once("data", resolve));
  process.stdin.pause();
  return String(line).trim();
}

// In a page that has globalThis.JsSIP: a UA for `impu` whose every request
// carries the Bearer token (JsSIP's authorization_jwt), connected, then
// registered; globalThis.run = {ua, version, events: []}.  Resolves to the
// REGISTER's outcome ({status, registered, cause}).
export async function jssipRegister({ server, impu, token, stepMs }) {
  const { JsSIP } = globalThis;
  const ua = new JsSIP.UA({
    sockets: [new JsSIP.WebSocketInterface(server)],
    uri: impu,
    authorization_jwt: `Bearer ${token}`,
    register: false,
    session_timers: false,
  });
  globalThis.run = { ua, version: JsSIP.version, events: [] };
  const timeout = (what) => new Promise((_, reject) => setTimeout(() => reject(new Error(what)), stepMs));
  const outcome = new Promise((resolve) => {
    ua.once("registered", (e) => resolve({ status: e.response.status_code, registered: true }));
    ua.once("registrationFailed", (e) =>
      resolve({ status: e.response ? e.response.status_code : null, cause: e.cause, registered: false }),
    );
  });
  const connected = new Promise((resolve) => ua.once("connected", resolve));
  ua.start();
  await Promise.race([connected, timeout("no WebSocket connection")]);
  ua.register();
  return Promise.race([outcome, timeout("no answer to the REGISTER")]);
}
