#!/usr/bin/env bash
# Puts the netns-exec helper next to the prebuilt addon: prebuildify only packs .node files, but
# lib/kernel/spawn.ts looks for the helper in the directory the addon is loaded from (as node-pty ships
# its spawn-helper). Run right after `prebuildify --napi --strip --tag-libc`.
#
# The addon is tagged with the libc it was built against (netns-cluster.napi.glibc.node, …) and
# node-gyp-build picks the one matching the machine. The helper is one file per platform
# directory, so it is linked statically: it then runs on glibc and musl systems alike.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="prebuilds/$(node -p 'process.platform + "-" + process.arch')"
[ -d "$dir" ] || { echo "prebuild-helper: $dir is missing; run prebuildify first" >&2; exit 1; }
ls "$dir"/*.node >/dev/null 2>&1 || { echo "prebuild-helper: no addon in $dir; run prebuildify first" >&2; exit 1; }
cc="${CC:-cc}"
"$cc" -static -O2 -std=gnu11 -Wall -Wextra -Wno-unused-parameter -o "$dir/netns-exec" native/netns_exec.c
chmod 0755 "$dir/netns-exec"
strip --strip-all "$dir/netns-exec"
echo "prebuild-helper: $dir/netns-exec (static)"
