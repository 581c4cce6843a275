#!/usr/bin/env bash
# The whole test suite: installs what the tests need (Debian packages, npm
# dependencies), builds, type-checks, lints, and runs vitest, whose global setup
# starts and stops dockerd, the registries and the fake GitLab itself.
# Ends with one plain line: "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/deps.sh
npm run -s build
npm run -s typecheck
npx tsc -p tsconfig.bench.json
# Lint and format check (biome check): a line over 140 characters or an unformatted file fails the suite.
npm run -s lint

mkdir -p .tmp
report=.tmp/vitest-report.json
rm -f "$report"
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?

if [ -f "$report" ]; then
  node -e '
    const r = require(process.argv[1]);
    console.log(`${r.numPassedTests} passed, ${r.numFailedTests + (r.numRuntimeErrorTestSuites ?? 0)} failed`);
  ' "$(pwd)/$report"
else
  echo "0 passed, 1 failed"
  [ "$status" != 0 ] || status=1
fi
exit "$status"
