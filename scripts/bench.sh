#!/usr/bin/env bash
# npm run bench: installs what the benchmarks need, builds, and runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
npm run -s build
npx tsc -p tsconfig.bench.json
exec node dist/bench/index.js "$@"
