#!/usr/bin/env bash
# Runs a command from this project inside a throwaway qemu guest booted with Debian 12's Linux 6.1
# (the last kernels with the CLUSTERIP target), so the suite is tested on a second kernel.
#
#   scripts/kernel-guest.sh [options] -- CMD [ARGS...]   run CMD in the project directory in the guest
#   scripts/kernel-guest.sh [options] --vitest [FILES...] run vitest on FILES (all tests without FILES)
#   scripts/kernel-guest.sh --prepare                     only fetch and build what the guest needs
# Options:
#   --json FILE      with --vitest: write vitest's JSON report to FILE (on the host)
#   --timeout SECS   power the guest off after SECS (default 3600); counts as a failure
#
# The exit status is the command's. A guest that does not boot, or ends without reporting the
# command's status, exits 125 with a message saying so.
#
# How: the kernel package (linux-image-6.1.0-NN-amd64, the newest apt offers) is fetched with
# `apt-get download` and unpacked with `dpkg-deb -x` into a cache directory; it is never installed
# as the host's kernel. The raw vmlinux is cut out of the compressed bzImage so qemu boots it
# directly (PVH), which is much faster under TCG than decompressing it in the guest. A small busybox
# initramfs loads the 9p and overlay modules, mounts the host's / read-only over 9p under a tmpfs
# overlay (every write is thrown away at power-off), adds a read-only layer with the 6.1 modules,
# kmod and iptables (the host has neither), and switches to it; the built addon, dist/ and
# node_modules then run unchanged (same files, same glibc). A second, writable 9p share carries the
# command in and its output and exit status out. KVM is not used: TCG only
# (`-accel tcg,thread=multi -cpu max -smp 2 -m 4096`), so guest times are emulated.
#
# Environment: NETNS_CLUSTER_KERNEL_CACHE (default /var/cache/netns-cluster-kernel),
# NETNS_CLUSTER_KERNEL (a kernel ABI such as 6.1.0-57-amd64; default: the newest apt offers),
# NETNS_CLUSTER_GUEST_SMP / NETNS_CLUSTER_GUEST_MEM (default 2 / 4096).
set -euo pipefail
cd "$(dirname "$0")/.."
project=$(pwd -P)
case $project in *[[:space:]]*) echo "kernel-guest: the project path must not contain white space: $project" >&2; exit 125 ;; esac

log() { printf '[kernel-guest] %s\n' "$*" >&2; }
die() { log "$*"; exit 125; }

[ "$(id -u)" = 0 ] || die "run as root (sudo): the guest's tests create namespaces, and apt needs root"

cache=${NETNS_CLUSTER_KERNEL_CACHE:-/var/cache/netns-cluster-kernel}
timeout_s=3600
json=
mode=
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --prepare) mode=prepare; shift ;;
    --vitest) mode=vitest; shift; args=("$@"); break ;;
    --json) json=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --) mode=cmd; shift; args=("$@"); break ;;
    *) die "unknown option '$1' (usage: $0 [--json FILE] [--timeout SECS] (--vitest [FILES...] | -- CMD [ARGS...] | --prepare))" ;;
  esac
done
[ -n "$mode" ] || die "nothing to run (usage: $0 [--json FILE] [--timeout SECS] (--vitest [FILES...] | -- CMD [ARGS...] | --prepare))"
[ "$mode" = cmd ] && [ ${#args[@]} -eq 0 ] && die "no command after --"
[ -z "$json" ] || [ "$mode" = vitest ] || die "--json goes with --vitest"

# Bumped whenever what gets built into the cache changes, so an old cache is rebuilt.
layout=3
# Modules the initramfs needs to reach the root filesystem (their dependencies come from modules.dep).
boot_modules=(virtio_pci 9pnet_virtio 9p overlay)
# Modules the tests use, loaded in the guest before the command runs (the kernel also loads others
# on demand through the layer's modprobe). Missing ones are reported, not fatal.
test_modules=(veth bridge br_netfilter dummy nf_tables nft_ct nft_hash nft_numgen nft_nat nft_masq nft_redir
  nft_reject_inet nft_fib_inet nft_chain_nat nf_conntrack nf_nat x_tables ip_tables ip6_tables
  iptable_filter iptable_mangle iptable_nat iptable_raw ip6table_filter ip6table_mangle
  ipt_CLUSTERIP xt_cluster xt_mark xt_conntrack xt_comment xt_multiport arp_tables arptable_filter
  ebtables ebtable_filter ebtable_nat tun sch_netem sch_htb cls_u32)
# Userland the layer adds (with whatever of their dependencies the host lacks).
layer_packages=(kmod iptables)

apt_install_missing() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
}

# The kernel ABI to use: the one asked for, else the newest linux-image-6.1.0-NN-amd64 apt knows
# (the generic flavour: the cloud one has no 9p), else the newest already in the cache (offline).
pick_kernel() {
  if [ -n "${NETNS_CLUSTER_KERNEL:-}" ]; then echo "$NETNS_CLUSTER_KERNEL"; return; fi
  local k
  k=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null |
    awk '{print $1}' | sed 's/^linux-image-//' | sort -V | tail -n 1)
  if [ -z "$k" ]; then
    k=$(find "$cache" -mindepth 2 -maxdepth 2 -name .complete -printf '%h\n' 2>/dev/null | xargs -r -n1 basename | sort -V | tail -n 1)
  fi
  [ -n "$k" ] || die "apt knows no linux-image-6.1.0-*-amd64 package (run apt-get update; Debian 12 sources needed)"
  echo "$k"
}

# Package names that `apt-get download` should fetch for the layer: the packages and their
# dependencies (recursively) that are not installed on the host.
layer_closure() {
  apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances \
    "${layer_packages[@]}" 2>/dev/null | grep -E '^[a-z0-9]' | sort -u | while read -r p; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
  done
}

build_cache() {
  local kver=$1 dir=$cache/$1
  local tmp=$dir.tmp
  rm -rf "$tmp"; mkdir -p "$tmp/debs" "$tmp/layer"
  log "fetching linux-image-$kver and the guest's userland (kmod, iptables) with apt-get download"
  local pkgs
  mapfile -t pkgs < <(layer_closure)
  (cd "$tmp/debs" && apt-get download -qq "linux-image-$kver" "${pkgs[@]}" 2>&1 | grep -v 'unsandboxed' >&2 || true)
  ls "$tmp/debs"/linux-image-"$kver"_*.deb >/dev/null 2>&1 || die "could not download linux-image-$kver"
  local deb
  for deb in "$tmp/debs"/*.deb; do dpkg-deb -x "$deb" "$tmp/layer"; done
  # The host has merged /usr (/lib -> usr/lib, ...): move the packages' /lib, /bin, /sbin into usr/
  # and leave the same symlinks, so the layer never hides the host's directories.
  local d
  for d in lib bin sbin lib64; do
    if [ -d "$tmp/layer/$d" ] && [ ! -L "$tmp/layer/$d" ]; then
      mkdir -p "$tmp/layer/usr/$d"
      cp -a "$tmp/layer/$d/." "$tmp/layer/usr/$d/"
      rm -rf "${tmp:?}/layer/$d"
    fi
    [ -e "$tmp/layer/usr/$d" ] && ln -sfn "usr/$d" "$tmp/layer/$d"
  done
  # iptables is an alternative (set up by its postinst, which does not run here): the legacy one,
  # the only way to CLUSTERIP.
  # Debian names them iptables-legacy, iptables-legacy-save, iptables-legacy-restore (and ip6tables-…).
  local t fam verb
  for fam in iptables ip6tables; do
    for verb in "" -save -restore; do
      t=$fam-legacy$verb
      [ -e "$tmp/layer/usr/sbin/$t" ] || die "iptables did not unpack $t"
      ln -sfn "$t" "$tmp/layer/usr/sbin/$fam$verb"
    done
  done
  [ -x "$tmp/layer/usr/bin/kmod" ] || die "kmod did not unpack"
  [ -d "$tmp/layer/usr/lib/modules/$kver" ] || die "linux-image-$kver has no modules"
  # depmod from the unpacked kmod (the host has none); it picks its applet from argv[0].
  ln -sfn "$tmp/layer/usr/bin/kmod" "$tmp/depmod"
  "$tmp/depmod" -b "$tmp/layer" "$kver" || die "depmod failed"

  # The raw vmlinux: the bzImage's payload is xz (magic FD 37 7A 58 5A 00), decompress from there.
  local vmlinuz=$tmp/layer/boot/vmlinuz-$kver off
  [ -f "$vmlinuz" ] || die "linux-image-$kver has no /boot/vmlinuz-$kver"
  off=$(LC_ALL=C grep -obUaP '\xFD7zXZ\x00' "$vmlinuz" | head -n 1 | cut -d: -f1)
  [ -n "$off" ] || die "no xz payload in $vmlinuz"
  # (xz stops at the end of its stream, so tail may die of SIGPIPE: only xz's status counts.)
  { tail -c +$((off + 1)) "$vmlinuz" 2>/dev/null; true; } | xz -dc --single-stream > "$tmp/vmlinux" ||
    die "could not decompress the kernel"
  cp "$tmp/layer/boot/config-$kver" "$tmp/config" 2>/dev/null || true
  rm -rf "$tmp/layer/boot"

  build_initramfs "$kver" "$tmp"
  rm -rf "$tmp/debs" "$tmp/depmod"
  echo "$layout" > "$tmp/.complete"
  rm -rf "$dir"; mv "$tmp" "$dir"
  log "cached in $dir"
}

# The modules (paths under lib/modules/KVER) to insmod for NAME, dependencies first.
module_chain() {
  local kver=$1 root=$2 name=$3
  local dep=$root/usr/lib/modules/$kver/modules.dep line path deps i
  line=$(grep -E "/${name//_/[_-]}\.ko(\.[a-z]+)?:" "$dep" | head -n 1) || true
  if [ -z "$line" ]; then
    grep -qE "/${name//_/[_-]}\.ko" "$root/usr/lib/modules/$kver/modules.builtin" && return 0
    die "module $name is not in linux-image-$kver"
  fi
  path=${line%%:*}
  read -r -a deps <<< "${line#*:}"
  for ((i = ${#deps[@]} - 1; i >= 0; i--)); do echo "${deps[i]}"; done
  echo "$path"
}

build_initramfs() {
  local kver=$1 tmp=$2 root=$2/initramfs m p
  mkdir -p "$root"/{bin,dev,proc,sys,host,layer,rw,newroot,modules}
  cp "$(command -v busybox)" "$root/bin/busybox"
  ! ldd "$root/bin/busybox" >/dev/null 2>&1 || die "busybox is not static (install busybox-static)"
  : > "$root/modules/order"
  for m in "${boot_modules[@]}"; do
    while read -r p; do
      [ -n "$p" ] || continue
      grep -qxF "$(basename "$p" | sed 's/\.ko.*$//').ko" "$root/modules/order" && continue
      local base; base=$(basename "$p" | sed 's/\.ko.*$//')
      case $p in
        *.ko.xz) xz -dc "$tmp/layer/usr/lib/modules/$kver/$p" > "$root/modules/$base.ko" ;;
        *.ko.zst) zstd -qdc "$tmp/layer/usr/lib/modules/$kver/$p" > "$root/modules/$base.ko" ;;
        *.ko.gz) gzip -dc "$tmp/layer/usr/lib/modules/$kver/$p" > "$root/modules/$base.ko" ;;
        *) cp "$tmp/layer/usr/lib/modules/$kver/$p" "$root/modules/$base.ko" ;;
      esac
      echo "$base.ko" >> "$root/modules/order"
    done < <(module_chain "$kver" "$tmp/layer" "$m")
  done
  # The first stage: reach the root filesystem and switch to it. Anything that fails here powers
  # the guest off without an exit status, which the host reports as a failed boot.
  cat > "$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
fail() { echo "kernel-guest init: $*" > /dev/console; echo o > /proc/sysrq-trigger; sleep 60; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules/order); do insmod "/modules/$m" || fail "insmod $m failed"; done
p9='trans=virtio,version=9p2000.L,msize=512000'
mount -t 9p -o "$p9,cache=loose,ro" hostroot /host || fail "cannot mount the host's root over 9p"
mount -t 9p -o "$p9,cache=loose,ro" layer /layer || fail "cannot mount the module layer over 9p"
mount -t tmpfs -o mode=0755 tmpfs /rw && mkdir /rw/upper /rw/work
mount -t overlay -o lowerdir=/layer:/host,upperdir=/rw/upper,workdir=/rw/work overlay /newroot ||
  fail "cannot mount the overlay root"
# The project may live under a directory that gets a fresh tmpfs below (/tmp, /var/tmp, /run: a CI
# checkout often does): hold it by a bind mount first and put it back on top.
project=
for w in $(cat /proc/cmdline); do case $w in kgproject=*) project=${w#kgproject=} ;; esac; done
mkdir -p /keep
held=
if [ -n "$project" ] && [ -d "/newroot$project" ]; then mount --bind "/newroot$project" /keep && held=1 || fail "cannot hold $project"; fi
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /newroot/run
mkdir -p /newroot/run/kernel-guest/io
mount -t 9p -o "$p9" io /newroot/run/kernel-guest/io || fail "cannot mount the io share"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /newroot/tmp
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /newroot/var/tmp
if [ -n "$held" ]; then
  if [ -d "/newroot$project" ]; then umount /keep; else mkdir -p "/newroot$project" && mount --move /keep "/newroot$project" || fail "cannot put $project back"; fi
fi
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev
exec switch_root /newroot /bin/bash /run/kernel-guest/io/stage2.sh
EOF
  chmod +x "$root/init"
  (cd "$root" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) > "$tmp/initramfs.cpio.gz"
  rm -rf "$root"
}

# The second stage, in the switched root (the host's userland): the rest of a minimal system,
# the test modules, then the command; its status goes to the io share and the guest powers off.
write_stage2() {
  local io=$1
  cat > "$io/stage2.sh" <<'EOF'
#!/bin/bash
io=/run/kernel-guest/io
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb LANG=C.UTF-8
poweroff() { sync; echo o > /proc/sysrq-trigger; sleep 60; }
trap poweroff EXIT
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount -t mqueue mqueue /dev/mqueue 2>/dev/null
ln -sfn /proc/self/fd /dev/fd; ln -sfn /proc/self/fd/0 /dev/stdin
ln -sfn /proc/self/fd/1 /dev/stdout; ln -sfn /proc/self/fd/2 /dev/stderr
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
ip link set lo up
hostname netns-cluster-guest
ldconfig
# One modprobe for all of them (each run of it reads the module indexes over 9p).
modprobe -a -q $(cat $io/modules) 2>/dev/null
failed=()
for m in $(cat $io/modules); do
  [ -d "/sys/module/$m" ] || grep -q "/$m\.ko" "/lib/modules/$(uname -r)/modules.builtin" || failed+=("$m")
done
[ ${#failed[@]} -eq 0 ] || echo "kernel-guest: modules not loaded: ${failed[*]}"
echo "kernel-guest: $(uname -r), $(nproc) CPUs, up $(cut -d' ' -f1 /proc/uptime) s"
cd "$(cat $io/cwd)"
set +e
# Through a pipe, not the console itself: tools then print plain lines, not terminal redraws.
bash $io/cmd.sh < /dev/null 2>&1 | cat
echo "${PIPESTATUS[0]}" > $io/status.tmp && mv $io/status.tmp $io/status
EOF
}

# The whole run is one function: bash reads it entirely before running it, so editing this file
# while a guest runs cannot change what the running script does next.
main() {
  apt_install_missing qemu-system-x86 busybox-static xz-utils cpio
  kver=$(pick_kernel)
  if [ "$(cat "$cache/$kver/.complete" 2>/dev/null)" != "$layout" ]; then
    mkdir -p "$cache"
    # One builder at a time (two CI runs could share the cache).
    exec 9> "$cache/.lock"; flock 9
    [ "$(cat "$cache/$kver/.complete" 2>/dev/null)" = "$layout" ] || build_cache "$kver"
    exec 9>&-
  fi
  kdir=$cache/$kver
  [ "$mode" = prepare ] && { log "ready: $kdir"; exit 0; }

  io=$(mktemp -d /tmp/netns-cluster-guest.XXXXXX)
  trap 'rm -rf "$io"' EXIT
  write_stage2 "$io"
  printf '%s\n' "${test_modules[@]}" > "$io/modules"
  echo "$project" > "$io/cwd"
  {
    # NETNS_CLUSTER_TEST_SLOWDOWN: the tests' wait limits grow with emulation (test/helpers.ts).
    echo 'export NETNS_CLUSTER_GUEST_KERNEL=1 NETNS_CLUSTER_TEST_SLOWDOWN=10 CI=1 NO_COLOR=1'
    if [ "$mode" = vitest ]; then
      # Emulation is several times slower than the host: the harness's per-test limits grow with it
      # (they are limits against hangs, not timing assertions).
      printf 'exec node_modules/.bin/vitest run --testTimeout=%s --hookTimeout=%s --reporter=default' 600000 600000
      [ -z "$json" ] || printf ' --reporter=json --outputFile.json=/run/kernel-guest/io/report.json'
      [ ${#args[@]} -eq 0 ] || printf ' %q' "${args[@]}"
      echo
    else
      printf 'exec'; printf ' %q' "${args[@]}"; echo
    fi
  } > "$io/cmd.sh"

  virtfs=security_model=none,multidevs=remap
  start=$(date +%s)
  log "booting Linux $kver (TCG, ${NETNS_CLUSTER_GUEST_SMP:-2} CPUs); guest times are emulated"
  set +e
  timeout -k 10 "$timeout_s" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max -smp "${NETNS_CLUSTER_GUEST_SMP:-2}" -m "${NETNS_CLUSTER_GUEST_MEM:-4096}" \
    -nodefaults -no-user-config -display none -no-reboot -serial stdio -monitor none \
    -kernel "$kdir/vmlinux" -initrd "$kdir/initramfs.cpio.gz" \
    -append "console=ttyS0 quiet loglevel=3 panic=1 rdinit=/init mitigations=off kgproject=$project" \
    -virtfs "local,path=/,mount_tag=hostroot,readonly=on,$virtfs" \
    -virtfs "local,path=$kdir/layer,mount_tag=layer,readonly=on,$virtfs" \
    -virtfs "local,path=$io,mount_tag=io,$virtfs" \
    < /dev/null | sed -u 's/\r$//'
  qemu_status=${PIPESTATUS[0]}
  set -e
  elapsed=$(($(date +%s) - start))
  if [ ! -f "$io/status" ]; then
    if [ "$qemu_status" = 124 ]; then die "the guest ran out of time (${timeout_s} s) without reporting an exit status"; fi
    die "the guest did not boot or ended without reporting an exit status (qemu exit $qemu_status); see the console output above"
  fi
  status=$(cat "$io/status")
  if [ -n "$json" ]; then
    if [ -f "$io/report.json" ]; then cp "$io/report.json" "$json"; else log "vitest wrote no JSON report"; fi
  fi
  log "guest finished in ${elapsed} s (emulated), exit status $status"
  exit "$status"
}
main
exit
