#!/usr/bin/env bash
# Prepare this machine for userphoto: system packages (when root), a virtualenv, Python deps.
# Idempotent and quick when nothing changed. Used by `make run` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
# Debian packages the tests and benchmarks use: real slapd and Samba AD DC for directory code,
# Chromium for the web pages, nginx-light + wrk and vipsthumbnail as benchmark references.
# Installed with --no-install-recommends, so what Samba only *recommends* but provisioning a DC
# needs is listed here: samba-dsdb-modules (samba_secrets, ...) and samba-vfs-modules (acl_xattr).
APT_PACKAGES=(slapd ldap-utils samba samba-ad-provision chromium nginx-light wrk libvips-tools
              iproute2 util-linux samba-dsdb-modules samba-vfs-modules
              curl)  # curl: the deploy test uploads through nginx the way the field report did
# libldap2-dev + libsasl2-dev (+ a compiler) build python-ldap, the syncrepl (RFC 4533) client.
APT_PACKAGES+=(libldap2-dev libsasl2-dev gcc python3-dev)

# systemd-analyze checks the units in docs/deploy/. (The test OpenID provider needs Node.js >= 20
# with npm, which the machine brings: Debian's own nodejs is 18, too old for oidc-provider 9.)
APT_PACKAGES+=(systemd)
# PostgreSQL for the scale-out store (usually running before the tests start).
APT_PACKAGES+=(postgresql)

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
    echo "      (and fail under CI=true): install them as root, or run this script as root" >&2
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

# The OpenID provider the sign-in tests run (npm oidc-provider, pinned by tests/oidc/package-lock.json).
oidc=tests/oidc
if [ ! -d "$oidc/node_modules" ] || [ "$oidc/package-lock.json" -nt "$oidc/node_modules" ]; then
  if command -v npm >/dev/null; then
    (cd "$oidc" && npm ci --no-audit --no-fund --loglevel=error) && touch "$oidc/node_modules"
  else
    echo "note: npm is missing; the OpenID Connect tests need Node.js 20 and npm" >&2
  fi
fi
