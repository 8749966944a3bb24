#!/usr/bin/env bash
# Installs everything the build, the demo and the tests need, from Debian's packages and PyPI.
# Idempotent and quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(build-essential cmake libgtest-dev prometheus binutils)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v go >/dev/null || { echo "setup: Go toolchain not found (need go >= 1.24 on PATH)" >&2; exit 1; }
go mod download

VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating Python venv in $VENV"
  python3 -m venv "$VENV"
fi
# Reinstall whenever scripts/requirements-test.txt changed since the last successful install.
stamp="$VENV/.requirements-test.txt"
if ! cmp -s scripts/requirements-test.txt "$stamp"; then
  echo "setup: installing Python test requirements into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r scripts/requirements-test.txt
  cp scripts/requirements-test.txt "$stamp"
fi
