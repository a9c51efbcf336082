#!/usr/bin/env bash
# Create .venv (if missing) and install membot with local embeddings and the test tools into it.
# torch is pinned first: 2.13.0 is a CPU build; any other pin pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[local,dev]"
echo "membot installed in .venv: activate it with '. .venv/bin/activate', then run 'membot --help'."
