#!/usr/bin/env bash
# Install the Label Studio server into its own virtualenv (its pinned dependencies must not
# touch the main environment, where mlflow lives), and migrate a template database once, so that
# a test session's server starts in seconds instead of minutes (tests/conftest.py copies it).
# Idempotent: each step is skipped when its result is there.
#   SVPKIT_LS_VENV      where the venv goes (default ~/.cache/svpkit-ls-venv)
#   SVPKIT_LS_VERSION   Label Studio version (default 1.23.2)
set -euo pipefail
VENV="${SVPKIT_LS_VENV:-$HOME/.cache/svpkit-ls-venv}"
VERSION="${SVPKIT_LS_VERSION:-1.23.2}"
TEMPLATE="$VENV/svpkit-template"
if [ -x "$VENV/bin/label-studio" ] && "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('label-studio') != '$VERSION')" 2>/dev/null; then
  echo "label-studio $VERSION already in $VENV"
else
  rm -rf "$TEMPLATE"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q "label-studio==$VERSION"
  echo "label-studio $VERSION installed in $VENV"
fi
if [ ! -f "$TEMPLATE/label_studio.sqlite3" ]; then
  # The first start migrates the database (minutes on a busy machine): do it once, here.
  rm -rf "$TEMPLATE.tmp" && mkdir -p "$TEMPLATE.tmp"
  PORT="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  LABEL_STUDIO_BASE_DATA_DIR="$TEMPLATE.tmp" "$VENV/bin/label-studio" start --no-browser --host 127.0.0.1 --internal-host 127.0.0.1 \
    --port "$PORT" --data-dir "$TEMPLATE.tmp" >"$TEMPLATE.tmp/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 600); do
    if "$VENV/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/health', timeout=2)" 2>/dev/null; then
      break
    fi
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 1
  done
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  if [ -f "$TEMPLATE.tmp/label_studio.sqlite3" ] && grep -q "Starting development server\|Quit the server\|Django version" "$TEMPLATE.tmp/server.log"; then
    mkdir -p "$TEMPLATE" && mv "$TEMPLATE.tmp/label_studio.sqlite3" "$TEMPLATE/" && rm -rf "$TEMPLATE.tmp"
    echo "migrated template database in $TEMPLATE"
  else
    echo "warning: Label Studio did not start to migrate a template database; see $TEMPLATE.tmp/server.log" >&2
  fi
fi
