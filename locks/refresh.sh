#!/usr/bin/env bash
# Re-resolve the two locks deliberately (never as part of an install), from the registries as they are
# today. Review the diff (`git diff locks/`), run `bash .ci/run`, and commit the locks with the change
# that needed them. docs/installing.md says when and why.
#   locks/main.txt          constraints for the main environment: svpkit with its dev and shards extras and
#                           every plugin under plugins/ (the README's commands and .ci/install.sh use it)
#   locks/label-studio.txt  the Label Studio server's own virtualenv (plugins/svpkit-labelstudio/tools/)
set -euo pipefail
cd "$(dirname "$0")/.."
LS_VERSION="${SVPKIT_LS_VERSION:-1.23.2}"
plugins=()
for plugin in plugins/*/; do [ -f "$plugin/pyproject.toml" ] && plugins+=(-e "$plugin"); done
report="$(mktemp -d)"
trap 'rm -rf "$report"' EXIT
# --ignore-installed: resolve as on an empty machine, whatever this environment holds.
python -m pip install -q --dry-run --ignore-installed --report "$report/main.json" \
  torch==2.14.1 torchvision==0.29.1 -e ".[dev,shards]" "${plugins[@]}"
# sentry-sdk 3 removed options Label Studio 1.23 passes at start ('Unknown option send_default_pii').
python -m pip install -q --dry-run --ignore-installed --report "$report/ls.json" \
  "label-studio==$LS_VERSION" "sentry-sdk<3"
python locks/write_lock.py "$report/main.json" locks/main.txt \
  "svpkit's main environment: torch==2.14.1 torchvision==0.29.1 -e .[dev,shards] and every plugin under plugins/"
python locks/write_lock.py "$report/ls.json" locks/label-studio.txt \
  "the Label Studio server's virtualenv: label-studio==$LS_VERSION, sentry-sdk<3"
git --no-pager diff --stat -- locks/ || true
