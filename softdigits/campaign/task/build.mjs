// Builds the task page into dist/ from src/ and node_modules (`npm ci && npm run build`,
// or `make campaign-task`). No bundler: jsPsych and its plugins ship browser builds
// (dist/index.browser.min.js, globals jsPsychModule, jsPsychInstructions, ...), copied
// into dist/vendor/ so the page loads nothing from any other host. dist/build.json records
// the versions that went in.
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
const pkg = JSON.parse(readFileSync(join(here, "package.json"), "utf8"));

// node_modules file -> dist/vendor name
const vendor = {
  "jspsych/dist/index.browser.min.js": "jspsych.js",
  "jspsych/css/jspsych.css": "jspsych.css",
  "@jspsych/plugin-html-button-response/dist/index.browser.min.js": "plugin-html-button-response.js",
  "@jspsych/plugin-instructions/dist/index.browser.min.js": "plugin-instructions.js",
  "@jspsych/plugin-preload/dist/index.browser.min.js": "plugin-preload.js",
  "@jspsych/plugin-call-function/dist/index.browser.min.js": "plugin-call-function.js",
};

rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, "vendor"), { recursive: true });
const versions = {};
for (const [from, to] of Object.entries(vendor)) {
  const name = from.startsWith("@") ? from.split("/").slice(0, 2).join("/") : from.split("/")[0];
  const installed = JSON.parse(readFileSync(join(here, "node_modules", name, "package.json"), "utf8")).version;
  if (installed !== pkg.dependencies[name]) {
    throw new Error(`${name} ${installed} is installed but package.json pins ${pkg.dependencies[name]}: run npm ci`);
  }
  versions[name] = installed;
  copyFileSync(join(here, "node_modules", from), join(dist, "vendor", to));
}
for (const file of readdirSync(join(here, "src"))) {
  copyFileSync(join(here, "src", file), join(dist, file));
}
writeFileSync(join(dist, "build.json"), JSON.stringify({ versions }, null, 2) + "\n");
console.log(`built ${dist}: ${Object.entries(versions).map(([n, v]) => `${n} ${v}`).join(", ")}`);
