// Build step of the browser WIC: bundles the JsSIP npm package (CommonJS,
// shipped without a browser bundle) into one ES module, static/build/jssip.js,
// that static/app.js imports.  Our own modules are served as they are.
//
// Run by `make wic` after `npm ci`; the output directory is git-ignored, so
// nothing third-party is committed.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));

await build({
  entryPoints: [path.join(here, "jssip-entry.js")],
  outfile: path.join(here, "static", "build", "jssip.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2020"],
  minify: true,
  sourcemap: true,
  legalComments: "linked",
  logLevel: "warning",
});
