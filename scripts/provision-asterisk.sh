#!/usr/bin/env bash
# Obtain Asterisk 22 from Debian sid packages into a cache folder and make it runnable on the
# host without a chroot (see docs/architecture.md, "Asterisk provisioning").
#
# Usage: scripts/provision-asterisk.sh [ROOT]
#   ROOT defaults to $HOTLINE_ASTERISK_ROOT or ${XDG_CACHE_HOME:-$HOME/.cache}/hotline12345/asterisk-root
# Prints the Asterisk version it provides on the last line of stdout.
set -euo pipefail

root="${1:-${HOTLINE_ASTERISK_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/hotline12345/asterisk-root}}"
packages="asterisk,asterisk-modules,asterisk-core-sounds-en-wav,asterisk-moh-opsound-wav"

die() { echo "provision-asterisk: $*" >&2; exit 1; }

asterisk_cmd() {
  "$root/lib64/ld-linux-x86-64.so.2" \
    --library-path "$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu" \
    "$root/usr/sbin/asterisk" "$@"
}

if [ ! -f "$root/.hotline12345-ready" ]; then
  [ "$(uname -m)" = "x86_64" ] || die "only x86_64 hosts are supported (got $(uname -m))"
  if ! command -v debootstrap >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "debootstrap is missing and apt-get is not available"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null \
      || die "could not install debootstrap (apt-get install debootstrap failed)"
  fi
  tmp="$root.partial"
  rm -rf "$tmp"
  mkdir -p "$(dirname "$root")"
  echo "provision-asterisk: fetching Asterisk from Debian sid into $root (about 1 minute, 570 MB; cached afterwards)" >&2
  if ! debootstrap --variant=minbase --include="$packages" sid "$tmp" >"$tmp.log" 2>&1; then
    tail -n 20 "$tmp.log" >&2 || true
    die "debootstrap of Debian sid with Asterisk failed (full log: $tmp.log). Asterisk cannot be had; check that Debian's package mirror is reachable."
  fi
  # Links that point through /etc/alternatives resolve against the host when Asterisk runs
  # without a chroot: re-point them inside the root. Without the en sounds (and 'beep'),
  # Record() and RECORD FILE fail silently.
  sounds="$tmp/usr/share/asterisk/sounds"
  if [ -L "$sounds/en" ] || [ ! -e "$sounds/en" ]; then
    target=$(ls -d "$sounds"/en_US_* 2>/dev/null | head -n 1 || true)
    [ -n "$target" ] || die "no English core sounds were unpacked under $sounds"
    rm -f "$sounds/en"
    ln -s "$(basename "$target")" "$sounds/en"
  fi
  moh="$tmp/usr/share/asterisk/moh"
  if [ -L "$moh" ] && [ ! -e "$moh" ]; then
    rm -f "$moh"
    ln -s ../asterisk/moh "$moh" 2>/dev/null || true
  fi
  rm -f "$tmp.log"
  rm -rf "$root"
  mv "$tmp" "$root"
  touch "$root/.hotline12345-ready"
fi

[ -x "$root/usr/sbin/asterisk" ] || die "$root has no usr/sbin/asterisk; remove the folder and run again"
version=$(asterisk_cmd -V 2>/dev/null) || die "Asterisk in $root does not start; remove the folder and run again"
case "$version" in
  "Asterisk 2"[0-9]*) ;;
  *) die "unexpected Asterisk version '$version' in $root (need 20 or newer)" ;;
esac
echo "provision-asterisk: $version in $root" >&2
echo "$version"
