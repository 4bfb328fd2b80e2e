#!/usr/bin/env bash
# Install the Label Studio server into its own virtualenv (its pinned dependencies must not
# touch the main environment, where mlflow lives). Idempotent: does nothing when the venv
# already has the wanted version. The tests (tests/conftest.py) start it from there.
#   SVPKIT_LS_VENV      where the venv goes (default ~/.cache/svpkit-ls-venv)
#   SVPKIT_LS_VERSION   Label Studio version (default 1.23.2)
set -euo pipefail
VENV="${SVPKIT_LS_VENV:-$HOME/.cache/svpkit-ls-venv}"
VERSION="${SVPKIT_LS_VERSION:-1.23.2}"
if [ -x "$VENV/bin/label-studio" ] && "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('label-studio') != '$VERSION')" 2>/dev/null; then
  echo "label-studio $VERSION already in $VENV"
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "label-studio==$VERSION"
echo "label-studio $VERSION installed in $VENV"
