"""What to tell people when the prompt still overflows after summarizing: advice on MEMBOT_CONTEXT_WINDOW only
when that setting is plausibly the cause, and the real cause otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.errors import ConfigError

if TYPE_CHECKING:  # types only: the settings check reads MIN_WINDOW without loading the turn stack
    from agent.context import Budget
    from agent.llm import ContextOverflow

MIN_WINDOW = 2048  # below this, membot's fixed prompt and a reply leave no room for a conversation
SERVE_BIGGER = ("serve the model with a larger context (llama-server -c 4096, Ollama num_ctx or "
                "OLLAMA_CONTEXT_LENGTH=4096, vLLM --max-model-len 4096, LM Studio's context length)")


def overflow_notice(exc: ContextOverflow, setting: int, fixed: int) -> str:
    """`setting` is MEMBOT_CONTEXT_WINDOW, `fixed` the tokens of system prompt and tool schemas we sent."""
    found = exc.diagnosis
    said = f" ({found.server}: {found.text})" if found else ""
    real = found.window if found else None
    if real is not None and (fixed >= real or real < MIN_WINDOW):
        return (f"The model's context window is only {real} tokens and membot's fixed prompt alone takes about "
                f"{fixed}{said}: {SERVE_BIGGER}, at least {MIN_WINDOW} tokens.")
    if real is not None and real < setting:
        return (f"The model's context window is {real} tokens but MEMBOT_CONTEXT_WINDOW is {setting}{said}. "
                f"Set MEMBOT_CONTEXT_WINDOW={real}, or {SERVE_BIGGER}.")
    if real is not None:
        return (f"The prompt did not fit the model's {real}-token window even after summarizing{said}; the "
                "server counts more tokens than membot's estimate. Try again, or ask for a shorter answer.")
    return (f"The prompt did not fit the model's context window even after summarizing{said}. "
            f"MEMBOT_CONTEXT_WINDOW ({setting}) is probably larger than the model's real window: lower it, or "
            f"{SERVE_BIGGER}.")


MIN_HISTORY = 128  # tokens left for the conversation itself on the smallest window


def check_fits(budget: Budget, fixed: int) -> None:
    """At start: the fixed prompt (`fixed` tokens: instructions, memory, tool schemas) and the reply room must
    leave room for a conversation, or every turn would fail later with a less clear message."""
    need = fixed + budget.reply_reserve + MIN_HISTORY
    if need > budget.window:
        raise ConfigError(f"MEMBOT_CONTEXT_WINDOW={budget.window} is too small: membot's fixed prompt takes about "
                          f"{fixed} tokens and a reply {budget.reply_reserve} (MEMBOT_MAX_TOKENS), which leaves no "
                          f"room for the conversation. Use a window of at least {need} tokens and {SERVE_BIGGER}.")
