#!/usr/bin/env bash
# Installs the Debian packages Pagoda builds and tests with, if any are missing. Needs root (or sudo).
# Usage: scripts/install_deps.sh [--help]
set -euo pipefail
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
    echo "usage: scripts/install_deps.sh   installs missing Debian packages (gcc, make, PCRE2, utf8proc,"
    echo "                                 xxhash, jansson, libmicrohttpd, clang for fuzzing, python3-pip)"
    exit 0
fi
packages=(build-essential bc pkg-config libpcre2-dev libutf8proc-dev libxxhash-dev libjansson-dev
          libmicrohttpd-dev libcurl4-openssl-dev chromium clang libclang-rt-14-dev python3 python3-pip ca-certificates jq)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install_deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
