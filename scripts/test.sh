#!/usr/bin/env bash
# Lint, type-check and run every test, offline (PostgreSQL on 127.0.0.1:5432 and servers the tests start).
# Without the optional torch extra the tests of that embedder are left out, and the run says so; CI installs
# the extra and never leaves them out.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
.venv/bin/ruff check bot agent adapters tests bench
.venv/bin/mypy
.venv/bin/lint-imports --no-cache  # the import rules of docs/architecture.md (pyproject.toml)
if ! .venv/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('sentence_transformers') is None)"; then
    if [ "${CI:-}" = "true" ]; then
        echo "CI must test the torch embedder too: install with scripts/install.sh --torch" >&2
        exit 1
    fi
    echo "The torch extra is not installed: the tests marked 'torch' are left out (scripts/install.sh --torch adds it)."
    set -- -m "not torch" "$@"
fi
.venv/bin/python -m pytest -q "$@"
