#!/usr/bin/env bash
# Lint, type-check and run every test, offline (PostgreSQL on 127.0.0.1:5432 and servers the tests start).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
.venv/bin/ruff check bot agent adapters tests bench
.venv/bin/mypy
.venv/bin/lint-imports --no-cache  # the import rules of docs/architecture.md (pyproject.toml)
.venv/bin/python -m pytest -q "$@"
