#!/usr/bin/env bash
# The whole test suite: installs what the tests need (Debian packages, npm
# dependencies), builds, type-checks, and runs vitest, whose global setup
# starts and stops dockerd, the registries and the fake GitLab itself.
# Ends with one plain line: "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in dockerd:docker.io docker-registry:docker-registry prometheus:prometheus promtool:prometheus \
  prometheus-alertmanager:prometheus-alertmanager skopeo:skopeo htpasswd:apache2-utils openssl:openssl curl:curl; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
[ -x /bin/busybox ] || need+=(busybox-static)
if ((${#need[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "missing packages: ${need[*]} (run as root, or: sudo apt-get install -y ${need[*]})" >&2
    exit 2
  fi
  echo "installing: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

[ -d node_modules ] && [ node_modules -nt package-lock.json ] || npm ci --no-audit --no-fund
npm run -s build
npx tsc -p tsconfig.test.json

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
