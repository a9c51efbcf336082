"""`membot doctor`: checks that print one line each, with the fix under a failure.

A check is a function `(Container) -> list[Finding]`; add one to CHECKS (or pass your own list) to add lines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import click

from agent.llm import OpenAIChat
from agent.probe import FAIL, PASS, WARN, Finding, probe_model, probe_stream, probe_tools, probe_window
from bot.container import LLM_HELP, Container

Check = Callable[[Container], list[Finding]]
MARKS = {PASS: ("✓", "green"), WARN: ("!", "yellow"), FAIL: ("✗", "red")}


def check_settings(c: Container) -> list[Finding]:
    from agent.context import Budget
    from agent.errors import ConfigError
    from agent.loop import Limits, TurnRunner
    from agent.overflow import check_fits
    from agent.tools.base import BASE_TOOLS
    from agent.tools.schedule import SCHEDULE_TOOLS

    s = c.settings
    findings = [Finding(PASS, "settings", f"MEMBOT_CONTEXT_WINDOW {s.context_window}, max_tokens {s.reply_tokens}, "
                                          f"reply mode {s.reply_mode}, streaming {s.llm_stream}.")]
    if not s.llm_configured:
        return findings
    budget = Budget(s.context_window, reply_reserve=s.reply_tokens)
    runner = TurnRunner(c.model, BASE_TOOLS + SCHEDULE_TOOLS, Limits(budget))  # no stores: nothing is opened
    fixed = runner.fixed_estimate()
    try:
        check_fits(budget, fixed)
    except ConfigError as exc:
        return [*findings, Finding(FAIL, "prompt", str(exc))]
    findings.append(Finding(PASS, "prompt", f"membot's fixed prompt is about {fixed} tokens (tool schemas "
                                            f"{runner.schema_tokens}), leaving {s.context_window - fixed} of the "
                                            "window for the conversation and the reply."))
    return findings


def _chat(c: Container) -> OpenAIChat | Finding:
    if not c.settings.llm_configured:
        return Finding(FAIL, "model", "No chat model is configured.", LLM_HELP)
    chat = c.model
    if not isinstance(chat, OpenAIChat):
        return Finding(WARN, "model", "A chat model other than the OpenAI-compatible client is in use.")
    return chat


def check_model(c: Container) -> list[Finding]:
    """Served, tool calling, streaming: three small requests."""
    chat = _chat(c)
    if isinstance(chat, Finding):
        return [chat]
    findings = [probe_model(chat), probe_tools(chat)]
    if findings[-1].status == FAIL and "HTTP" in findings[-1].detail:
        return findings  # the endpoint refuses membot's requests: a stream probe would only repeat it
    return [*findings, probe_stream(chat)]


def check_window(c: Container) -> list[Finding]:
    """One request as long as the configured window: slow on a CPU server, hence `--quick` skips it."""
    chat = _chat(c)
    return [] if isinstance(chat, Finding) else [probe_window(chat, c.settings.context_window,
                                                              c.settings.reply_tokens)]


CHECKS: list[Check] = [check_settings, check_model, check_window]


def run_doctor(c: Container, checks: Sequence[Check] = CHECKS, out: Callable[[str], None] = click.echo) -> bool:
    """Print every check's findings; True when none failed."""
    s = c.settings
    out(f"membot doctor: {s.openai_base_url or 'https://api.openai.com/v1'}, model {s.llm_model}")
    ok = True
    for check in checks:
        for finding in check(c):
            mark, color = MARKS[finding.status]
            out(click.style(f"{mark} {finding.title}: ", fg=color) + finding.detail)
            if finding.fix and finding.status != PASS:
                out(f"  fix: {finding.fix}")
            ok &= finding.status != FAIL
    return ok
