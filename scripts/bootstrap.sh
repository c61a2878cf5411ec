#!/usr/bin/env bash
# Installs whatever is missing to build, test and run netns-cluster on Debian/Ubuntu, then builds
# the addon and the TypeScript. Idempotent: a second run only checks. Needs root (apt, netns).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[bootstrap] %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
  log "run as root (sudo): installing packages and creating network namespaces need it"
  exit 1
fi

# Build tools and headers for the addon (libiptc-dev: libip4tc for the iptables backend); iproute2/nftables/iperf3 are used by tests and benchmarks
# to check the kernel's state independently; openvpn is the service the cluster runs.
packages=(build-essential python3 pkg-config libmnl-dev libnftnl-dev libiptc-dev iproute2 nftables openvpn iperf3 iputils-ping openssl bird2)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v node >/dev/null || ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then
  log "Node.js 20 or newer is required (found: $(node --version 2>/dev/null || echo none))"
  exit 1
fi

# npm dependencies: reinstall only when the manifest or lock changed since the last install.
stamp=node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ package.json -nt "$stamp" ] || { [ -f package-lock.json ] && [ package-lock.json -nt "$stamp" ]; }; then
  log "installing npm dependencies"
  if [ -f package-lock.json ]; then npm ci --ignore-scripts --no-audit --no-fund >/dev/null; else npm install --ignore-scripts --no-audit --no-fund >/dev/null; fi
fi

quiet() {  # run a step, show its output only if it fails
  local out
  if ! out=$("$@" 2>&1); then printf '%s\n' "$out" >&2; log "failed: $*"; exit 1; fi
}
# The addon (make rebuilds only what changed) and the TypeScript.
# Configure again when binding.gyp changed (new sources, flags) since the last configure.
if [ ! -f build/Makefile ] || [ binding.gyp -nt build/Makefile ]; then log "configuring the native addon"; quiet npx --no-install node-gyp configure; fi
log "building the native addon"
quiet npx --no-install node-gyp build
log "compiling TypeScript"
quiet npx --no-install tsc -p tsconfig.json
log "type-checking the tests"
quiet npx --no-install tsc -p tsconfig.test.json
