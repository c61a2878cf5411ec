#!/bin/sh
# Called by binding.gyp while node-gyp configures the addon: prints the compiler (--cflags) or
# linker (--libs) flags of libmnl, libnftnl and libip4tc (libiptc, the iptables backend; its
# headers only) from pkg-config, or says which Debian/Ubuntu package is missing and exits 1 (instead of a raw
# compiler error about a missing header).
set -u
what=${1:---libs}
missing=""
if ! command -v pkg-config >/dev/null 2>&1; then
  echo "netns-cluster: pkg-config is not installed; it finds libmnl, libnftnl and libip4tc for the native addon: apt-get install pkg-config libmnl-dev libnftnl-dev libiptc-dev" >&2
  exit 1
fi
for pair in libmnl:libmnl-dev libnftnl:libnftnl-dev libip4tc:libiptc-dev; do
  lib=${pair%%:*}
  pkg=${pair#*:}
  pkg-config --exists "$lib" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  echo "netns-cluster: building the native addon needs the headers of libmnl, libnftnl and libip4tc; missing:$missing. Install with: apt-get install$missing (or use a package with prebuilt binaries for $(uname -m))" >&2
  exit 1
fi
# libip4tc: headers only; the addon loads libip4tc.so.2 itself when an iptables op first runs, so
# that it (and the nftables backend) also loads on hosts without it.
if [ "$what" = "--libs" ]; then
  exec pkg-config --libs libmnl libnftnl
fi
exec pkg-config "$what" libmnl libnftnl libip4tc
