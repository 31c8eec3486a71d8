#!/usr/bin/env bash
# One idempotent setup: Debian packages (libtorch, Gloo headers, OpenBLAS, OpenMPI, a compiler), npm packages from
# the lockfile, the native addon, the TypeScript build. Each step runs only when something it depends on changed.
# LIBTORCH=<dir> (official libtorch zip or a Python torch package directory) replaces Debian's libtorch-dev.
#
#   bash scripts/setup.sh           what training, sampling and the demo need (npm run setup / npm run demo)
#   bash scripts/setup.sh --test    plus what the test suite drives (Chromium for the report page, namespaces and
#                                   /usr/bin/time for cluster and fuzz tests, PyTorch for cross-checks) (npm test)
#   bash scripts/setup.sh --bench   plus PyTorch, the reference the benchmarks compare against (npm run bench)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

mode=run
case "${1:-}" in
  '') ;;
  --test) mode=test ;;
  --bench) mode=bench ;;
  *) say "unknown option '$1'"; say "fix: bash scripts/setup.sh [--test | --bench]"; exit 2 ;;
esac

# ---- Debian packages
# A|B: whichever exists on this release (Debian 13 renamed libtcmalloc-minimal4 to libtcmalloc-minimal4t64 and keeps
# the old name only as a virtual package, which dpkg never reports as installed).
# fonts-dejavu-core: the font loss.png is drawn with (src/report/png.ts gives resvg that file; no system font lookup).
packages=(build-essential python3 libopenblas0-pthread 'libtcmalloc-minimal4t64|libtcmalloc-minimal4' openmpi-bin libopenmpi-dev procps fonts-dejavu-core)
if [[ -z "${LIBTORCH:-}" ]]; then
  packages+=(libtorch-dev libgloo-dev)
fi
# Only for tests: a real browser for the report page, iproute2 for the network-namespace clusters, GNU time for the
# fuzz suite's memory bound; openssh-server/-client and util-linux (unshare) build the ssh test cluster
# (test/helpers/ssh-cluster.ts), whose sshds run inside network namespaces only: the package's own service is not
# started by this script (see below).
if [[ $mode == test ]]; then packages+=(chromium iproute2 time openssh-server openssh-client util-linux); fi
# Also only for tests: an independent reader of the TensorBoard event files we write (protoc compiles the event schema
# for Google's protobuf runtime, crcmod checks the CRC-32C framing; test/report/fixtures/read_tfevents.py).
if [[ $mode == test ]]; then packages+=(protobuf-compiler python3-protobuf python3-crcmod); fi
# python3-torch is the measuring stick for cross-checks and benchmarks (never a runtime dependency).
if [[ $mode != run && "${NANOGPT_SKIP_PYTORCH:-0}" != 1 ]]; then packages+=(python3-torch); fi

# (Output captured first: with pipefail, `… | grep -q` can fail when grep exits before the writer is done.)
installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == *'install ok installed'* ]]; }
has_candidate() { [[ $(apt-cache policy "$1" 2>/dev/null || true) =~ Candidate:\ [^\(] ]]; }

missing=()
for spec in "${packages[@]}"; do
  IFS='|' read -r -a alternatives <<<"$spec"
  found=0
  for p in "${alternatives[@]}"; do if installed "$p"; then found=1; break; fi; done
  ((found)) || missing+=("$spec")
done
if ((${#missing[@]})); then
  if ! command -v apt-get >/dev/null; then
    say "missing packages: ${missing[*]}, and this is not a Debian/Ubuntu system."
    say "fix: install libtorch (set LIBTORCH=<dir with include/ and lib/>), a C++17 compiler, python3 and OpenMPI, then rerun."
    exit 1
  fi
  SUDO=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null; then SUDO=(sudo); else
      say "missing packages: ${missing[*]//|/ or }; not root and no sudo."
      say "fix: as root run: apt-get update && apt-get install -y ${missing[*]//|*/}"
      exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! "${SUDO[@]}" apt-get update -qq; then
    say "apt-get update failed"
    say "fix: check network access to the Debian mirrors (or install the packages by hand), then rerun npm run setup"
    exit 1
  fi
  # Each alternative list resolves to the first name this release has a real package for.
  names=()
  for spec in "${missing[@]}"; do
    IFS='|' read -r -a alternatives <<<"$spec"
    pick=${alternatives[-1]}
    for p in "${alternatives[@]}"; do
      if has_candidate "$p"; then pick=$p; break; fi
    done
    names+=("$pick")
  done
  say "installing Debian packages: ${names[*]}"
  # Installing openssh-server would start (and listen on port 22 of) the machine's own sshd; the tests need only
  # the binary. A policy-rc.d that refuses service starts (Debian's standard switch, honoured by invoke-rc.d and
  # deb-systemd-invoke) keeps it stopped during this install; one that is already there is left alone.
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [[ " ${names[*]} " == *' openssh-server '* && ! -e $policy ]]; then
    printf '#!/bin/sh\n# made by nanogpt-ts scripts/setup.sh while installing packages; removed right after\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
    "${SUDO[@]}" chmod 755 "$policy"
    made_policy=1
  fi
  install_ok=1
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${names[@]}" >/dev/null || install_ok=0
  if ((made_policy)); then
    "${SUDO[@]}" rm -f "$policy"
    say "openssh-server installed without starting its service (the tests run their own sshd inside network namespaces)"
  fi
  if ((!install_ok)); then
    say "apt-get could not install: ${names[*]}"
    say "fix: check network access to the Debian mirrors (or install them by hand), then rerun npm run setup"
    exit 1
  fi
fi

# ---- npm packages from the lockfile
# Keyed by the lockfile's content (not its modification time, which every fresh clone or copy renews).
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f node_modules/.nanogpt-lock || "$(cat node_modules/.nanogpt-lock)" != "$lock_hash" ]]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" >node_modules/.nanogpt-lock
fi

# ---- native addon (rebuilt when its sources, binding.gyp or the libtorch it builds against changed)
# Compared by content, not modification times: a fresh clone, a `git checkout` or the copy into the Debian 13 root
# gives the same sources new times, and a rebuild costs minutes on two cores.
addon=build/Release/nanogpt_torch.node
stamp=build/.sources
libtorch_id="${LIBTORCH:-system libtorch-dev $(dpkg-query -W -f='${Version}' libtorch-dev 2>/dev/null || true)}"
want="$libtorch_id $(cat native/* binding.gyp scripts/torch-paths.mjs | sha256sum | cut -d' ' -f1)"
rebuild=0
if [[ ! -f $addon || ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then rebuild=1; fi
if ((rebuild)); then
  say "building the libtorch addon ($(node scripts/torch-paths.mjs describe | tr -d '\n'))"
  gyp_args=(rebuild --jobs max)
  # Use the headers that ship with this Node (no download from nodejs.org needed).
  node_prefix="$(dirname "$(dirname "$(command -v node)")")"
  if [[ -f "$node_prefix/include/node/node_api.h" ]]; then gyp_args+=("--nodedir=$node_prefix"); fi
  if ! npx --no-install node-gyp "${gyp_args[@]}" >build.log 2>&1; then
    grep -E 'error|Error' build.log | head -20 >&2 || true
    say "building the addon failed (full log: build.log)"
    say "fix: make sure libtorch-dev and libgloo-dev are installed, or LIBTORCH points at a libtorch with include/ and lib/"
    exit 1
  fi
  echo "$want" >"$stamp"
  rm -f build.log
fi

# ---- TypeScript
say "compiling TypeScript"
npx --no-install tsc -p tsconfig.json
say "ready"
