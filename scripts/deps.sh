#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks run for real, when missing.
# Sourced by scripts/test.sh and scripts/bench.sh.
need=()
for pair in dockerd:docker.io docker-registry:docker-registry prometheus:prometheus promtool:prometheus \
  prometheus-alertmanager:prometheus-alertmanager amtool:prometheus-alertmanager skopeo:skopeo \
  htpasswd:apache2-utils openssl:openssl curl:curl chromium:chromium systemd-analyze:systemd \
  docker-compose:docker-compose; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
[ -x /bin/busybox ] || need+=(busybox-static)
[ -x /usr/bin/time ] || need+=(time)
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
# playwright-core drives Debian's chromium (the status page test); it never downloads a browser.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PUPPETEER_SKIP_DOWNLOAD=1
[ -d node_modules ] && [ node_modules -nt package-lock.json ] || npm ci --no-audit --no-fund
