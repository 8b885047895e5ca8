#!/usr/bin/env bash
# Prepare this machine for userphoto: system packages (when root), a virtualenv, Python deps.
# Idempotent and quick when nothing changed. Used by `make run` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
# Debian packages the tests and benchmarks use: real slapd and Samba AD DC for directory code,
# Chromium for the web pages, nginx-light + wrk and vipsthumbnail as benchmark references,
# PostgreSQL for the scale-out store, systemd-analyze for the deploy units.
APT_PACKAGES=(slapd ldap-utils samba samba-ad-provision chromium nginx-light wrk libvips-tools
              iproute2 util-linux postgresql systemd)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing system packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "note: missing system packages (${missing[*]}); tests that need them will be skipped" >&2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
stamp="$VENV/.installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  "$VENV/bin/pip" install -q -e '.[test]'
  touch "$stamp"
fi
