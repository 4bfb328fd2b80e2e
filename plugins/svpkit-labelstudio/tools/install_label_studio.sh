#!/usr/bin/env bash
# Install the Label Studio server into its own virtualenv (its pinned dependencies must not
# touch the main environment, where mlflow lives) at exactly the versions of the lock, and migrate a
# template database once, so that a test session's server starts in seconds instead of minutes
# (tests/conftest.py copies it). Idempotent: a venv that matches the lock is kept. Exits non-zero,
# with the end of the server's log, when Label Studio cannot be installed or migrated.
#   SVPKIT_LS_VENV   where the venv goes (default ~/.cache/svpkit-ls-venv)
#   SVPKIT_LS_LOCK   the lock (default locks/label-studio.txt of this repository; `bash locks/refresh.sh`)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="${SVPKIT_LS_VENV:-$HOME/.cache/svpkit-ls-venv}"
LOCK="${SVPKIT_LS_LOCK:-$HERE/../../../locks/label-studio.txt}"
TEMPLATE="$VENV/svpkit-template"
fail() { echo "error: $*" >&2; exit 1; }
[ -f "$LOCK" ] || fail "the Label Studio lock $LOCK does not exist"
VERSION="$(sed -n 's/^label-studio==//p' "$LOCK")"
[ -n "$VERSION" ] || fail "$LOCK pins no label-studio version"

matches_lock() {  # every pin of the lock installed at its version
  [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/label-studio" ] || return 1
  "$VENV/bin/python" - "$LOCK" <<'PY'
import importlib.metadata as m, sys
norm = lambda n: n.lower().replace("_", "-").replace(".", "-")
have = {norm(d.metadata["Name"]): d.version for d in m.distributions()}
pins = [l.split("==", 1) for l in open(sys.argv[1]).read().splitlines() if l and not l.startswith("#")]
sys.exit(any(have.get(norm(n)) != v for n, v in pins))
PY
}

if matches_lock; then
  echo "label-studio $VERSION already in $VENV (matches $(basename "$LOCK"))"
else
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$LOCK" >"$VENV/install.log" 2>&1; then
    tail -n 15 "$VENV/install.log" >&2
    fail "could not install Label Studio $VERSION from $LOCK into $VENV (the end of pip's log is above)"
  fi
  matches_lock || fail "Label Studio's virtualenv $VENV does not match $LOCK after installing it"
  echo "label-studio $VERSION installed in $VENV from $(basename "$LOCK")"
fi
if [ ! -f "$TEMPLATE/label_studio.sqlite3" ]; then
  # The first start migrates the database (minutes on a busy machine): do it once, here.
  rm -rf "$TEMPLATE.tmp" && mkdir -p "$TEMPLATE.tmp"
  PORT="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  LABEL_STUDIO_BASE_DATA_DIR="$TEMPLATE.tmp" "$VENV/bin/label-studio" start --no-browser --host 127.0.0.1 --internal-host 127.0.0.1 \
    --port "$PORT" --data-dir "$TEMPLATE.tmp" >"$TEMPLATE.tmp/server.log" 2>&1 &
  SERVER=$!
  healthy=0
  for _ in $(seq 1 600); do
    if "$VENV/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/health', timeout=2)" 2>/dev/null; then
      healthy=1
      break
    fi
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 1
  done
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  if [ "$healthy" = 1 ] && [ -f "$TEMPLATE.tmp/label_studio.sqlite3" ]; then
    mkdir -p "$TEMPLATE" && mv "$TEMPLATE.tmp/label_studio.sqlite3" "$TEMPLATE/" && rm -rf "$TEMPLATE.tmp"
    echo "migrated template database in $TEMPLATE"
  else
    tail -n 15 "$TEMPLATE.tmp/server.log" >&2
    fail "Label Studio $VERSION did not start to migrate its template database (the end of $TEMPLATE.tmp/server.log is above)"
  fi
fi
