// What the browser drivers of the WIC tests share: Debian's Chromium launched
// through playwright-core with the flags every browser test uses (a profile
// directory of the driver's own), SIP.js bundled for a page, and the next line
// the test writes on the driver's stdin.
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
