#!/usr/bin/env bash
# Start the daemon on a fresh clone: install dependencies, build, run.
# With no ci-prober.yml (and no $CI_PROBER_CONFIG) it discovers this host's
# runners: /etc/gitlab-runner/config.toml, ~/.gitlab-runner/config.toml,
# $DOCKER_CONFIG/config.json or ~/.docker/config.json.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] && [ node_modules -nt package-lock.json ] || npm ci --no-audit --no-fund
npm run -s build
exec node dist/src/main.js run "$@"
