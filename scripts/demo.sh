#!/usr/bin/env bash
# `make run`: the main job on the embedded default store (./lightkeeper-data, SQLite).
# Benign sample photos stand in for a "known" list: a bank is filled from a few originals,
# then edited copies (blurred, sharpened, shrunk, cropped, re-encoded) and unrelated photos
# are matched against it. Then the matching service starts on the same store (Ctrl-C stops it),
# with an API key for the demo in ./lightkeeper-data/demo-key; the README shows the first request.
set -uo pipefail
LK=${LK:-.venv/bin/lightkeeper}
VECTORS=${VECTORS:-../shared/pdq-vectors}
if [ ! -d "$VECTORS" ]; then
  echo "no sample photos at $VECTORS (set VECTORS=DIR)" >&2
  exit 4
fi
set -e
"$LK" bank show demo >/dev/null 2>&1 ||
  "$LK" bank create demo --description "benign sample photos standing in for a known list"
echo "== the 'known' list: hashes of two sample photos"
"$LK" bank add demo "$VECTORS/dih/bridge-1-original.jpg" "$VECTORS/labelme-subset/q1050.jpg"
echo
echo "== matching edited copies and unrelated photos"
set +e
"$LK" match "$VECTORS/bridge-mods" "$VECTORS/labelme-subset"
status=$?
set -e
case $status in
  0 | 10) echo; echo "done: results above (exit status $status: 10 means matches were found)";;
  *) exit "$status";;
esac
[ "${SERVE:-1}" = 1 ] || exit 0
KEY_FILE=lightkeeper-data/demo-key
if [ ! -s "$KEY_FILE" ]; then
  (umask 077 && "$LK" keys create demo --scope hash --scope match --scope lookup >"$KEY_FILE")
fi
PORT=${PORT:-8080}
echo
echo "== the matching service on http://127.0.0.1:$PORT (Ctrl-C stops it); in another terminal:"
echo "   curl -s -H \"Authorization: Bearer \$(cat $KEY_FILE)\" \\"
echo "        --data-binary @$VECTORS/bridge-mods/blur-a-lot.jpg http://127.0.0.1:$PORT/v1/match"
echo
exec "$LK" serve --port "$PORT"
