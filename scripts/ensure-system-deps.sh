#!/usr/bin/env bash
# Installs the system packages the build needs when they are missing (Debian/Ubuntu, as root):
# a C compiler and Python's headers for the compiled cores, and venv support.
set -euo pipefail
PYTHON=${PYTHON:-python3}
missing=()
command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
"$PYTHON" -c 'import sysconfig, os, sys; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)' \
  || missing+=(python3-dev)
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing system packages: ${missing[*]} — install them (e.g. sudo apt-get install ${missing[*]})" >&2
  exit 3
fi
echo "installing system packages: ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
