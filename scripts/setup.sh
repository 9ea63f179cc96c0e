#!/usr/bin/env bash
# One-time setup on Debian (as root): the system packages the mount and its tests need, then
# `npm ci` (which also builds dist/ and the fixed fuse-native addon). Installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
# make, gcc, g++: `npm ci` builds the patched fuse-native addon (scripts/fix-fuse-native.mjs),
# whose read fast path and utimens fix the tests expect.
for pkg in libfuse2 fuse attr rsync git python3 openssl make gcc g++; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
command -v vim >/dev/null 2>&1 || command -v vim.tiny >/dev/null 2>&1 || need+=(vim-tiny)
command -v aws >/dev/null 2>&1 || need+=(awscli)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ -e /dev/fuse ] || { mknod /dev/fuse c 10 229 && chmod 666 /dev/fuse; }
npm ci --no-audit --no-fund
