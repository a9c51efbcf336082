#!/usr/bin/env bash
# Create .venv (if missing) and install membot, its default ONNX embedder and the test tools into it.
# --torch adds the optional sentence-transformers + torch embedder (CI installs it to test that path too).
# torch is pinned first: 2.13.0 is a CPU build; any other pin pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="dev"
for arg in "$@"; do
    case "$arg" in
        --torch) extras="torch,dev" ;;
        *) echo "usage: scripts/install.sh [--torch]" >&2; exit 2 ;;
    esac
done
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
if [ "$extras" = "torch,dev" ]; then
    .venv/bin/python -m pip install --quiet "torch==2.13.0"
fi
.venv/bin/python -m pip install --quiet -e ".[$extras]"
echo "membot installed in .venv: activate it with '. .venv/bin/activate', then run 'membot --help'."
