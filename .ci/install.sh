#!/usr/bin/env bash
# Everything the project and its tests need, from the registries reachable here, at the versions of the
# locks (locks/main.txt, locks/label-studio.txt; refreshed only by `bash locks/refresh.sh`). Fails, saying
# what is missing, when a component cannot be installed: the tests must not silently skip it on CI.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '== %s (%s s)\n' "$1" "$(( $(date +%s) - started ))"; }
started=$(date +%s)
plugins=()
for plugin in plugins/*/; do [ -f "$plugin/pyproject.toml" ] && plugins+=(-e "$plugin"); done
step "pip: svpkit[dev,shards] and $(( ${#plugins[@]} / 2 )) plugins, constrained by locks/main.txt"
python -m pip install -q -c locks/main.txt torch==2.14.1 torchvision==0.29.1 -e ".[dev,shards]" "${plugins[@]}"
# The Label Studio server for plugins/svpkit-labelstudio's tests, in its own virtualenv (its pinned
# dependencies must not reach mlflow's environment); idempotent, ≈2 min the first time.
step "Label Studio server (locks/label-studio.txt)"
plugins/svpkit-labelstudio/tools/install_label_studio.sh
# Headless Chromium and its driver for the browser tests (Debian packages).
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  step "chromium and chromium-driver (apt-get)"
  SUDO=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
  for attempt in 1 2 3; do
    if command -v apt-get >/dev/null 2>&1 &&
      $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
      $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver >/dev/null; then
      break
    fi
    echo "apt-get install chromium chromium-driver failed (attempt $attempt of 3)" >&2
    sleep $((attempt * 5))
  done
fi
step "checking every component the tests need"
python .ci/components.py
step "installed"
