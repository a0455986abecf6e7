#!/usr/bin/env bash
# Install the Debian packages hotline12345 needs to run and test, when they are missing.
# Needs root (apt-get); prints what to install otherwise.
set -euo pipefail

declare -A wanted=(
  [sipp]=sip-tester
  [redis-server]=redis-server
  [debootstrap]=debootstrap
  [espeak-ng]=espeak-ng
  [sox]=sox
  [soxi]=sox
  [openssl]=openssl  # the TLS Redis test makes its own CA
  [ip]=iproute2  # the separate-hosts test: network namespaces, veths, a bridge
  [nft]=nftables  # … and cutting a link between them
  [node]=nodejs  # the seat desk's SIP library (package.json: npm ci, bundled by esbuild)
  [npm]=npm
  [chromium]=chromium  # the browser tests (tests/browser, Playwright drives it: no browser download)
  [systemd-analyze]=systemd  # tests/unit/test_systemd_units.py verifies deploy/systemd
)
missing=()
for command in "${!wanted[@]}"; do
  command -v "$command" >/dev/null 2>&1 || missing+=("${wanted[$command]}")
done
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
dpkg-query -W -f='${Status}' fonts-noto-cjk 2>/dev/null | grep -q 'ok installed' || missing+=(fonts-noto-cjk)  # Chinese text in page screenshots
[ ${#missing[@]} -eq 0 ] && exit 0

packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: missing Debian packages: $packages" >&2
  echo "install-system-deps: run as root: apt-get install -y $packages" >&2
  exit 1
fi
echo "install-system-deps: installing $packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq $packages >/dev/null
