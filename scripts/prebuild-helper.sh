#!/usr/bin/env bash
# Puts the netns-exec helper next to the prebuilt addon: prebuildify only packs .node files, but
# lib/spawn.ts looks for the helper in the directory the addon is loaded from (as node-pty ships
# its spawn-helper). Run right after `prebuildify --napi --strip`, which leaves the helper in
# build/Release/.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="prebuilds/$(node -p 'process.platform + "-" + process.arch')"
helper=build/Release/netns-exec
[ -x "$helper" ] || { echo "prebuild-helper: $helper is missing; run prebuildify (or node-gyp rebuild) first" >&2; exit 1; }
[ -d "$dir" ] || { echo "prebuild-helper: $dir is missing; run prebuildify first" >&2; exit 1; }
install -m 0755 "$helper" "$dir/netns-exec"
strip --strip-all "$dir/netns-exec"
echo "prebuild-helper: $dir/netns-exec"
