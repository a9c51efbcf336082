"""`membot doctor` against the fake server in the modes real servers behave in: each failure is named with
its fix, and the exit status says whether anything failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.container import Container
from bot.doctor import CHECKS, check_window, run_doctor
from tests.conftest import make_settings, run_cli
from tests.fakes import FakeOpenAI


def doctor(home: Path, fake: FakeOpenAI, quick: bool = False, **env: Any) -> tuple[bool, str]:
    settings = make_settings(home, **{"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "test",
                                      "MEMBOT_LLM_MODEL": "fake-model", **env})
    lines: list[str] = []
    with Container(settings) as c:
        ok = run_doctor(c, [ch for ch in CHECKS if not (quick and ch is check_window)], lines.append)
    return ok, "\n".join(lines)


def test_a_good_endpoint_passes_every_check(home: Path, fake: FakeOpenAI) -> None:
    ok, text = doctor(home, fake)
    assert ok, text
    for title in ("settings", "prompt", "model", "tool calling", "streaming", "context window"):
        assert f"✓ {title}:" in text
    assert any(r.get("stream") for r in fake.chat_requests) and any(r.get("max_tokens") == 1
                                                                    for r in fake.chat_requests)


@pytest.mark.parametrize(("mode", "window", "line", "fix"), [
    ("ollama-no-tools", None, "✗ tool calling", "pick a tool-capable model"),
    ("llama-server-no-jinja", None, "✗ tool calling", "--jinja"),
    ("plain-text", None, "✗ tool calling", "tool-capable model"),
    ("content-tags", None, "! tool calling", "docs/models.md"),
    ("overflow-llama-server", 4000, "✗ context window", "Set MEMBOT_CONTEXT_WINDOW=4000"),
    ("overflow-vllm", 1000, "✗ context window", "at least 2048"),
    ("ollama-truncates", 3000, "✗ context window", "OLLAMA_CONTEXT_LENGTH=8192"),
])
def test_each_failure_is_named_with_its_fix(home: Path, fake: FakeOpenAI, mode: str, window: int | None,
                                            line: str, fix: str) -> None:
    fake.mode, fake.window = mode, window
    ok, text = doctor(home, fake)
    assert ok is line.startswith("!"), text
    assert line in text and "fix: " in text and fix in text


def test_an_unknown_model_and_the_cli_exit_status(home: Path, fake: FakeOpenAI) -> None:
    ok, text = doctor(home, fake, quick=True, MEMBOT_LLM_MODEL="llama9")
    assert not ok and "'llama9' is not among the served models: fake-model" in text
    assert "context window:" not in text  # --quick skips the long probe
    env = {"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "test", "MEMBOT_LLM_MODEL": "fake-model"}
    good = run_cli(home, "doctor", "--quick", env=env)
    assert good.returncode == 0 and "✓ tool calling" in good.stdout, good.stderr
    fake.mode = "ollama-no-tools"
    bad = run_cli(home, "doctor", "--quick", env=env)
    assert bad.returncode == 1 and "does not support tools" in bad.stdout


def test_no_model_configured(home: Path) -> None:
    lines: list[str] = []
    with Container(make_settings(home)) as c:
        assert not run_doctor(c, out=lines.append)
    assert any("No chat model is configured" in line for line in lines)
