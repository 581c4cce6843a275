#!/usr/bin/env bash
# npm run soak [-- --duration 5m --warmup 60s]: builds, starts the registries and the fake GitLab,
# runs one aged daemon against them and fails if heap, RSS, fds, timers, series or /metrics
# latency trend up after the warm-up (bench/soak.ts says how).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
npm run -s build
npx tsc -p tsconfig.bench.json
exec node dist/bench/soak.js "$@"
