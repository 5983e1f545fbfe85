#!/usr/bin/env bash
# Installs the system packages the build and the tests need when they are missing
# (Debian/Ubuntu, as root): a C compiler and Python's headers for the compiled cores, venv
# support, curl (the README's first request), and PostgreSQL's server binaries (initdb,
# postgres), with which the tests start a throwaway server of their own
# (lightkeeper/banks/pgserver.py), and Debian's Chromium, in which the tests drive the
# reviewer pages (Playwright launches /usr/bin/chromium; it never downloads a browser of its
# own). The PostgreSQL package's own cluster is
# neither created nor started: nothing listens on port 5432 afterwards.
set -euo pipefail
PYTHON=${PYTHON:-python3}

have_postgres_server() {
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    return 0
  fi
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
      return 0
    fi
  done
  return 1
}

missing=()
command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
"$PYTHON" -c 'import sysconfig, os, sys; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)' \
  || missing+=(python3-dev)
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
have_postgres_server || missing+=(postgresql)
# The README's first request (tests/test_readme_service.py runs it).
command -v curl >/dev/null 2>&1 || missing+=(curl)
# The reviewer pages' browser tests (tests/test_review_browser.py).
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing system packages: ${missing[*]} — install them (e.g. sudo apt-get install ${missing[*]})" >&2
  exit 3
fi
echo "installing system packages: ${missing[*]}" >&2

# Debian's postgresql package would create a "main" cluster and start it as a service. The
# tests run their own server, so: no cluster (postgresql-common reads createcluster.d), and
# no service started during the install (policy-rc.d 101 = "not now", if none is in place).
cleanup=()
trap 'rm -f "${cleanup[@]}"' EXIT
if [[ " ${missing[*]} " == *" postgresql "* ]]; then
  mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/lightkeeper.conf
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    cleanup+=(/usr/sbin/policy-rc.d)
  fi
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
