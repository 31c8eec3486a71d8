#!/usr/bin/env bash
# The test suite on Debian 13 (libtorch 2.6, Node 20.19, Open MPI 5), in a chroot standing in for a fresh Debian 13
# machine: `npm test` runs it after the host's suite, so every CI run proves both libtorch versions.
#
#   bash scripts/debian13.sh test      build (or reuse) the root, copy this checkout in, run setup + the suite there
#   bash scripts/debian13.sh root      only build (or update) the root
#   bash scripts/debian13.sh shell     a shell in the root (with /proc, /dev, /sys mounted), for debugging
#   bash scripts/debian13.sh run CMD…  refresh the checkout copy, run setup, then CMD in it (e.g. one test file)
#
# The root is made once with debootstrap from the Debian mirror and cached in $NANOGPT_DEBIAN13_ROOT (default
# /var/cache/nanogpt-ts/trixie, ~4 GB with libtorch 2.6); later runs only refresh the checkout copy inside it.
# Needs root (chroot, mounts). When that, the mirror or the disk space is missing, it says so and exits 0 with a
# SKIPPED line — never a silent pass; NANOGPT_DEBIAN13=off skips on purpose, NANOGPT_DEBIAN13=required turns a
# skip into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

root=${NANOGPT_DEBIAN13_ROOT:-/var/cache/nanogpt-ts/trixie}
mirror=${NANOGPT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
mode=${NANOGPT_DEBIAN13:-auto}
# Packages the root needs besides what scripts/setup.sh installs itself inside it (it runs there as on any
# Debian machine): Node and npm (Debian 13 ships Node 20.19), git, and what the tests' helpers call.
base_packages=(nodejs npm ca-certificates git procps iproute2)

say() { printf 'debian13: %s\n' "$*" >&2; }

skip() {
  say "SKIPPED — $1"
  say "fix: $2"
  if [[ $mode == required ]]; then exit 1; fi
  exit 0
}

mounted=()
unmount_all() {
  local m
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    m=${mounted[$i]}
    umount -l "$m" 2>/dev/null || true
  done
  mounted=()
}
trap unmount_all EXIT

mount_into_root() {
  # The netns cluster test needs / to be a mount point inside the root: bind the root onto itself first.
  if ! mountpoint -q "$root"; then
    mount --bind "$root" "$root" 2>/dev/null || skip "cannot mount inside $root (this environment does not allow mounts: no CAP_SYS_ADMIN?)" "run the suite where root may mount (a VM or a privileged container), or set NANOGPT_DEBIAN13=off"
    mounted+=("$root")
  fi
  for fs in proc sys dev dev/pts run; do
    mkdir -p "$root/$fs"
    if ! mountpoint -q "$root/$fs"; then
      case $fs in
        proc) mount -t proc proc "$root/proc" ;;
        sys) mount --rbind /sys "$root/sys" ;;
        dev) mount --rbind /dev "$root/dev" ;;
        dev/pts) continue ;;
        run) mount -t tmpfs tmpfs "$root/run" ;;
      esac
      mounted+=("$root/$fs")
    fi
  done
  mkdir -p "$root/run/netns"
}

in_root() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

make_root() {
  if [[ -f $root/.nanogpt-ready ]]; then return; fi
  [[ $(id -u) -eq 0 ]] || skip "building the Debian 13 root needs root (debootstrap, chroot, mounts)" "run npm test as root, or set NANOGPT_DEBIAN13=off"
  command -v debootstrap >/dev/null || {
    if command -v apt-get >/dev/null; then apt-get install -y -qq debootstrap >/dev/null 2>&1 || true; fi
    command -v debootstrap >/dev/null || skip "debootstrap is not installed and could not be installed" "apt-get install debootstrap"
  }
  local parent
  parent=$(dirname "$root")
  mkdir -p "$parent"
  local free_kb
  free_kb=$(df -Pk "$parent" | awk 'NR == 2 { print $4 }')
  if ((free_kb < 6 * 1024 * 1024)); then
    skip "only $((free_kb / 1024)) MB free under $parent; the Debian 13 root needs about 6 GB while it is built" "free disk space or point NANOGPT_DEBIAN13_ROOT at a larger disk"
  fi
  if ! curl -fsS --max-time 20 -o /dev/null "$mirror/dists/trixie/Release" 2>/dev/null && ! wget -q -T 20 -O /dev/null "$mirror/dists/trixie/Release" 2>/dev/null; then
    skip "the Debian mirror $mirror cannot be reached" "check network access to the mirror, or set NANOGPT_DEBIAN_MIRROR"
  fi
  if [[ -f $root.tmp/etc/debian_version && -f $root.tmp/usr/bin/apt-get ]] && grep -q '^13' "$root.tmp/etc/debian_version"; then
    say "reusing the finished debootstrap in $root.tmp"
  else
    say "building a Debian 13 (trixie) root in $root with debootstrap (once; about 5-15 minutes)"
    rm -rf "$root.tmp"
  fi
  if [[ ! -f $root.tmp/usr/bin/apt-get ]] && ! debootstrap --variant=minbase --include=ca-certificates trixie "$root.tmp" "$mirror" >"$parent/debootstrap.log" 2>&1; then
    tail -5 "$parent/debootstrap.log" >&2
    skip "debootstrap of trixie from $mirror failed (log: $parent/debootstrap.log)" "check the mirror and the disk, then rerun"
  fi
  rm -rf "$root"
  mv "$root.tmp" "$root"
  install_base
  touch "$root/.nanogpt-ready"
}

install_base() {
  # npm inside the root reaches the registry through whatever CA the host trusts (a local proxy's included).
  mkdir -p "$root/usr/local/share/ca-certificates/host"
  if [[ -d /usr/local/share/ca-certificates ]]; then
    find /usr/local/share/ca-certificates -name '*.crt' -exec cp {} "$root/usr/local/share/ca-certificates/host/" \;
  fi
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  mount_into_root
  in_root apt-get update -qq
  in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${base_packages[@]}" >/dev/null
  in_root update-ca-certificates >/dev/null 2>&1 || true
  unmount_all
}

copy_checkout() {
  # Tracked and untracked-but-not-ignored files, as a clean clone has them; the root keeps its own node_modules/,
  # build/ (the addon built against its libtorch) and dist/ between runs.
  local dest=$root/build/nanogpt-ts
  mkdir -p "$dest"
  find "$dest" -mindepth 1 -maxdepth 1 ! -name node_modules ! -name build ! -name dist -exec rm -rf {} +
  git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$dest"
  # ../shared beside the project, as on the host (the reference config and benchmark scripts).
  if [[ -d ../shared ]]; then
    rm -rf "$root/build/shared"
    cp -a ../shared "$root/build/shared"
  fi
}

case "${1:-test}" in
  root)
    make_root
    say "root ready: $root"
    ;;
  shell)
    make_root
    mount_into_root
    chroot "$root" /bin/bash
    ;;
  test)
    if [[ $mode == off ]]; then
      say "SKIPPED — NANOGPT_DEBIAN13=off"
      exit 0
    fi
    [[ $(id -u) -eq 0 ]] || skip "the Debian 13 run needs root (chroot, mounts)" "run npm test as root, or set NANOGPT_DEBIAN13=off"
    make_root
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    copy_checkout
    mount_into_root
    say "running setup and the test suite on Debian 13 ($(in_root cat /etc/debian_version), node $(in_root node --version))"
    # The same two steps as the README's test command, inside the root.
    # This pass exists for what differs on Debian 13: libtorch 2.6, Gloo, Open MPI 5, Node 20.19, its packages.
    # Suites without libtorch (the tokenizer and prepare pipeline, docs checks, formatting helpers, the report page)
    # run in the host pass and are left out here to keep npm test within its time budget.
    SKIP_HERE='--skip=data/ --skip=docs/ --skip=util/ --skip=report/'
    say "not rerun on Debian 13 (no libtorch in them; run by the host pass): test/data/, test/docs/, test/util/, test/report/"
    # NANOGPT_IN_DEBIAN13_ROOT: tests that only the host pass runs say so when they skip (the ssh cluster's; set
    # NANOGPT_SSH_CLUSTER=on to run them here too).
    in_root /bin/bash -c "cd /build/nanogpt-ts && bash scripts/setup.sh --test && NANOGPT_DEBIAN13=off NANOGPT_IN_DEBIAN13_ROOT=1 NANOGPT_SSH_CLUSTER=${NANOGPT_SSH_CLUSTER:-} NANOGPT_FUZZ_EVERY=8 node scripts/run-tests.mjs $SKIP_HERE"
    ;;
  run)
    shift
    make_root
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    copy_checkout
    mount_into_root
    in_root /bin/bash -c "cd /build/nanogpt-ts && bash scripts/setup.sh --test && export NANOGPT_IN_DEBIAN13_ROOT=1 NANOGPT_SSH_CLUSTER=${NANOGPT_SSH_CLUSTER:-} && $*"
    ;;
  *)
    say "usage: bash scripts/debian13.sh test|root|shell|run CMD"
    exit 2
    ;;
esac
