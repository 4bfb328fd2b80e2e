#!/usr/bin/env bash
# Everything the project and its tests need, from the registries reachable here.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q torch==2.14.1 torchvision==0.29.1
python -m pip install -q -e ".[dev,shards]"
for plugin in plugins/*/; do
  [ -f "$plugin/pyproject.toml" ] && python -m pip install -q -e "$plugin"
done
# The Label Studio server for plugins/svpkit-labelstudio's tests, in its own virtualenv (its pinned
# dependencies must not reach mlflow's environment); idempotent, ≈140 s the first time.
if [ -x plugins/svpkit-labelstudio/tools/install_label_studio.sh ]; then
  plugins/svpkit-labelstudio/tools/install_label_studio.sh ||
    echo "warning: Label Studio not installed; plugins/svpkit-labelstudio's tests will be skipped" >&2
fi
# Headless Chromium and its driver for the MLflow UI test (tests/test_mlflow_ui.py; Debian packages).
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
    for attempt in 1 2 3; do
      if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
          chromium chromium-driver >/dev/null; then
        break
      fi
      echo "apt-get install chromium chromium-driver failed (attempt $attempt of 3)" >&2
      sleep $((attempt * 5))
    done
  fi
  if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    echo "warning: chromium/chromedriver not installed; tests/test_mlflow_ui.py will be skipped" >&2
  fi
fi
