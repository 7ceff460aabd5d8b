#!/usr/bin/env bash
# The README's first command: installs what is missing (Debian packages, the default model), builds
# Pagoda and answers one chat message with the default model, SmolLM2-135M-Instruct.
# Usage: scripts/demo.sh ["your question"]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
    echo "usage: scripts/demo.sh [\"question\"]   install, fetch the default model, build, and answer"
    exit 0
fi
question=${1:-"What is the capital of France, and what is it famous for?"}
scripts/install_deps.sh
model=$(scripts/fetch_model.sh)
echo "demo: building (make -j$(nproc))" >&2
make -j"$(nproc)" >/dev/null
echo "demo: pagoda chat -m $model --temp 0 -n 128 -p \"$question\"" >&2
echo >&2
./build/pagoda chat -m "$model" --temp 0 -n 128 -p "$question"
