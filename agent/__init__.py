"""The agent core's public surface: the names the adapters use. Everything else in agent/ is internal.

The names load on first use (PEP 562), so `import agent.errors` and `membot --help` stay light: the core's
modules pull in SQLAlchemy, pymilvus and the embedding stack.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers: the same names, resolved statically
    from agent.archival.catalog import Catalog, SourceSummary
    from agent.archival.search import SearchPage
    from agent.chat import Channel, ChatCore, SourceItem, SourcesAnswer
    from agent.db.models import Document
    from agent.errors import FileRejected, NotFound, UserError
    from agent.home import ChannelHome, block_limit, channel_home, check_block_text, edit_block, save_to_archival
    from agent.ledger import Ledger
    from agent.loading.inputs import InputFile
    from agent.loading.loader import LoadReport
    from agent.loading.readers import reader_for
    from agent.memory.archival import format_page
    from agent.memory.core import PERSON_PREFIX, Speaker
    from agent.names import display
    from agent.schedule.book import ScheduleBook
    from agent.schedule.commands import ScheduleAnswer, ScheduleItem, run_schedule_command
    from agent.schedule.delivery import Deliver, DeliveryError, Target
    from agent.service import AgentService, AgentSummary, MemoryView
    from agent.turns import Incoming, TurnEvent, TurnResult

_WHERE = {
    # channels and turns
    "Channel": "agent.chat", "ChatCore": "agent.chat",
    "SourceItem": "agent.chat", "SourcesAnswer": "agent.chat",
    "AgentService": "agent.service", "AgentSummary": "agent.service", "MemoryView": "agent.service",
    "Incoming": "agent.turns", "TurnEvent": "agent.turns", "TurnResult": "agent.turns",
    "Speaker": "agent.memory.core", "PERSON_PREFIX": "agent.memory.core",
    "format_page": "agent.memory.archival", "display": "agent.names",
    # a channel's agent at a glance (App Home, /memory panel)
    "ChannelHome": "agent.home", "channel_home": "agent.home", "edit_block": "agent.home",
    "block_limit": "agent.home", "check_block_text": "agent.home", "save_to_archival": "agent.home",
    # sources and files
    "Catalog": "agent.archival.catalog", "SourceSummary": "agent.archival.catalog",
    "SearchPage": "agent.archival.search", "Document": "agent.db.models",
    "InputFile": "agent.loading.inputs", "LoadReport": "agent.loading.loader", "reader_for": "agent.loading.readers",
    # timed events
    "ScheduleBook": "agent.schedule.book", "run_schedule_command": "agent.schedule.commands",
    "ScheduleAnswer": "agent.schedule.commands", "ScheduleItem": "agent.schedule.commands",
    "Deliver": "agent.schedule.delivery", "DeliveryError": "agent.schedule.delivery",
    "Target": "agent.schedule.delivery",
    # errors whose text is safe to show
    "UserError": "agent.errors", "NotFound": "agent.errors", "FileRejected": "agent.errors",
    # handled platform events and thread membership, shared by every process
    "Ledger": "agent.ledger",
}

__all__ = [
    "AgentService", "AgentSummary", "Catalog", "Channel", "ChannelHome", "block_limit", "channel_home",
    "check_block_text", "edit_block", "save_to_archival", "ChatCore", "Deliver", "DeliveryError", "Document",
    "FileRejected", "Incoming", "InputFile", "Ledger", "LoadReport", "MemoryView",
    "PERSON_PREFIX", "NotFound", "ScheduleBook", "SearchPage",
    "SourceItem", "SourceSummary", "SourcesAnswer",
    "Speaker", "Target", "TurnEvent", "TurnResult", "UserError", "display", "format_page",
    "reader_for", "run_schedule_command", "ScheduleAnswer", "ScheduleItem",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'agent' has no attribute {name!r}")
    value = getattr(import_module(where), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value
