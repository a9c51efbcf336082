"""Turning typed functions into OpenAI tool schemas, and calling them with model-supplied arguments.

A tool is `def name(ctx: ToolContext, arg: type, ...) -> str` with a docstring whose first paragraph is the
description and whose `Args:` section describes each argument. The schema is derived from exactly that, so
schema and behaviour cannot drift apart.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.errors import ToolFailure

HEARTBEAT_ARG = "request_heartbeat"
_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


@dataclass(frozen=True)
class Tool:
    name: str
    fn: Callable[..., str]
    schema: dict[str, Any]
    chains: bool  # takes request_heartbeat (every tool but send_message)
    paged: bool = False  # a search that pages its results, so its output is not cut at the usual limit

    def call(self, ctx: Any, arguments: dict[str, Any]) -> str:
        params = self.schema["function"]["parameters"]
        args = {k: v for k, v in arguments.items() if k != HEARTBEAT_ARG}
        unknown = sorted(set(args) - set(params["properties"]))
        if unknown:
            raise ToolFailure(f"{self.name} has no argument(s) {', '.join(unknown)}; "
                              f"its arguments are {', '.join(params['properties'])}.")
        missing = [p for p in params.get("required", []) if p not in arguments and p != HEARTBEAT_ARG]
        if missing:
            raise ToolFailure(f"{self.name} needs the argument(s) {', '.join(missing)}.")
        for key, value in args.items():
            args[key] = _coerce(self.name, key, value, params["properties"][key]["type"])
        return self.fn(ctx, **args)


def tool(chains: bool = True, paged: bool = False) -> Callable[[Callable[..., str]], Tool]:
    def wrap(fn: Callable[..., str]) -> Tool:
        return Tool(fn.__name__, fn, schema_for(fn, chains), chains, paged)

    return wrap


def schema_for(fn: Callable[..., str], chains: bool) -> dict[str, Any]:
    hints = typing.get_type_hints(fn)
    doc = inspect.getdoc(fn) or ""
    description, arg_docs = _parse_doc(doc)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, param in list(inspect.signature(fn).parameters.items())[1:]:  # skip ctx
        json_type, optional = _json_type(hints[name])
        # An argument whose name says it all gets no description: schemas are re-read on every step.
        properties[name] = {"type": json_type, **({"description": arg_docs[name]} if arg_docs.get(name) else {})}
        if param.default is inspect.Parameter.empty and not optional:
            required.append(name)
    if chains:
        # Optional and undescribed: the system prompt explains it once, and a missing one means false (the
        # loop still nudges a model that forgot it). Schemas are re-read on every step, so every token counts.
        properties[HEARTBEAT_ARG] = {"type": "boolean"}
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    return {"type": "function", "function": {"name": fn.__name__, "description": description,
                                             "parameters": parameters}}


def heartbeat_requested(arguments: dict[str, Any]) -> bool:
    """request_heartbeat as the model meant it: some models send the string "false", which is truthy."""
    value = arguments.get(HEARTBEAT_ARG)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _json_type(hint: Any) -> tuple[str, bool]:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        inner = next(a for a in args if a is not type(None))
        return _JSON_TYPES[inner], True
    return _JSON_TYPES[hint], False


def _parse_doc(doc: str) -> tuple[str, dict[str, str]]:
    head, _, rest = doc.partition("Args:")
    description = " ".join(head.split())
    args: dict[str, str] = {}
    for match in re.finditer(r"^\s*(\w+):\s*(.+?)(?=^\s*\w+:|\Z)", rest, re.M | re.S):
        args[match.group(1)] = " ".join(match.group(2).split())
    return description, args


def _coerce(tool_name: str, key: str, value: Any, json_type: str) -> Any:
    if value is None:
        return None
    try:
        if json_type == "integer" and not isinstance(value, bool):
            return int(value)
        if json_type == "number":
            return float(value)
        if json_type == "boolean" and isinstance(value, str):
            return value.strip().lower() in ("true", "1", "yes")
        if json_type == "string" and not isinstance(value, str):
            return json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ToolFailure(f"{tool_name}: argument {key} must be a {json_type}, got {value!r}.") from exc
    return value
