"""The import rules (pyproject.toml, docs/architecture.md) hold, and a wrong-way import or a cycle breaks them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT), "--no-cache"], cwd=tree, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the packages and the contracts, to break on purpose."""
    for package in ("bot", "adapters", "agent"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_tree_keeps_every_contract(tree: Path) -> None:
    result = lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "contract", "detail"), [
    ("agent/memory/core.py", "from agent.loop import TurnRunner",
     "inside the agent core, imports go only downward", "agent.memory.core -> agent.loop"),
    ("agent/schedule/service.py", "from agent.service import AgentService",
     "inside the agent core, imports go only downward", "agent.schedule.service -> agent.service"),
    ("agent/db/engine.py", "from agent.schedule import model",
     "inside the agent core, imports go only downward", "agent.db.engine -> agent.schedule.model"),
    ("adapters/slack/people.py", "from agent.db.models import Agent",
     "adapters use only the core's public surface", "adapters.slack.people -> agent.db.models"),
    ("adapters/console.py", "from bot.container import Container",
     "bot composes, adapters translate, agent decides", "adapters.console -> bot.container"),
])
def test_a_wrong_way_import_breaks_a_contract(tree: Path, module: str, line: str, contract: str,
                                              detail: str) -> None:
    append(tree / module, line)
    result = lint(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{contract}" in result.stdout and "BROKEN" in result.stdout
    assert detail in result.stdout


def test_an_import_under_type_checking_still_counts(tree: Path) -> None:
    """A TYPE_CHECKING import hides a cycle from Python, not from the contracts."""
    append(tree / "agent/tools/context.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                            "    from agent.service import AgentService")
    result = lint(tree)
    assert result.returncode == 1 and "agent.tools.context -> agent.service" in result.stdout


def test_a_cycle_between_sibling_modules_is_caught(tree: Path) -> None:
    """Inside one layer (agent.schedule) modules may import each other, but never both ways."""
    append(tree / "agent/schedule/parse.py", "from agent.schedule import commands")
    result = lint(tree)
    assert result.returncode == 1, result.stdout
    assert "no import cycles BROKEN" in result.stdout
