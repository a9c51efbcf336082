"""The composition root: builds the stores, the embedder and the services once, and closes them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta, timezone
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING, Any

from agent.errors import ConfigError
from bot.home import private_home
from bot.settings import Settings, load_settings, reveal

# Every service is imported where it is built: `membot search` and the source commands need only the stores,
# importing the turn stack (the chat model client, the loop, the schedules) would cost them most of a second,
# and with the stores imported late the embedding model can start (start_embedder) while they import.
if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from agent.archival.catalog import Catalog
    from agent.archival.milvus_store import PassageStore
    from agent.archival.search import Searcher
    from agent.archival.sources import Sources
    from agent.chat import ChatCore
    from agent.embeddings.base import Embedder
    from agent.inbox import Inbox
    from agent.ledger import Ledger
    from agent.llm import ChatModel, Completion
    from agent.loading.loader import Loader
    from agent.loading.parser import ParserPool
    from agent.loop import TurnRunner
    from agent.schedule.board import JobBoard
    from agent.schedule.book import ScheduleBook, ScheduleLimits
    from agent.schedule.delivery import DeliveryRegistry
    from agent.schedule.service import ScheduleService
    from agent.schedule.timer import Timer
    from agent.service import AgentService

log = logging.getLogger(__name__)
LLM_HELP = """No chat model is configured. Set OPENAI_API_KEY (for api.openai.com), or OPENAI_BASE_URL for any
OpenAI-compatible server, and MEMBOT_LLM_MODEL, for example:
  export OPENAI_API_KEY=sk-...                        MEMBOT_LLM_MODEL=gpt-4o-mini
  export OPENAI_BASE_URL=http://localhost:11434/v1    MEMBOT_LLM_MODEL=llama3.1      # Ollama
  export OPENAI_BASE_URL=http://localhost:8000/v1     MEMBOT_LLM_MODEL=Qwen/Qwen2.5-7B-Instruct  # vLLM
or save them with `membot configure`."""


def make_embedder(settings: Settings) -> Embedder:
    if settings.embedding_provider == "openai":
        from agent.embeddings.remote import OpenAIEmbedder

        return OpenAIEmbedder(settings.embedding_model, reveal(settings.openai_api_key), settings.openai_base_url,
                              settings.embedding_batch_size)
    from agent.embeddings.models import local_embedder

    return local_embedder(settings.embedding_model, settings.embedding_batch_size)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class NoModel:
    """The chat model until one is configured: any turn fails with how to configure one. Commands that never
    run a turn (listing or deleting agents, sources) work without it."""

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
                 on_draft: Callable[[str], None] | None = None) -> Completion:
        raise ConfigError(LLM_HELP)


class Container(AbstractContextManager["Container"]):
    """Each service is built once, on first use, from the ones below it, so a command opens only what it needs.
    Nothing else in membot constructs them."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None, model: ChatModel | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._model = model
        self.clock = clock or _utc_now  # the schedules' notion of now (tests move it by hand)
        self._embedder_lock = threading.Lock()
        self._starting: threading.Thread | None = None
        self._opening: threading.Thread | None = None

    # storage -------------------------------------------------------------------------------------------
    @cached_property
    def engine(self) -> Engine:
        from agent.db.engine import open_engine

        private_home(self.settings.home)
        engine = open_engine(self.settings.database_url, connections=self.settings.turn_workers + 5)
        private_home(self.settings.home)  # the database file it may just have created
        return engine

    @cached_property
    def ledger(self) -> Ledger:
        """Handled platform events and thread membership, shared by every process on this database."""
        from agent.ledger import Ledger

        return Ledger(self.engine)

    @cached_property
    def catalog(self) -> Catalog:
        from agent.archival.catalog import Catalog

        return Catalog(self.engine)

    @cached_property
    def passages(self) -> PassageStore:
        from agent.archival.milvus_store import PassageStore

        # Milvus Lite is opened on first use: a search answered from snapshots never imports pymilvus or opens it.
        private_home(self.settings.home)
        return PassageStore(self.settings.milvus_uri, self.settings.milvus_names, connect=False)

    @property
    def embedder(self) -> Embedder:
        with self._embedder_lock:  # built once, though start_embedder's thread may ask at the same moment
            if self._embedder is None:
                self._embedder = make_embedder(self.settings)
            return self._embedder

    def start_embedder(self) -> None:
        """Start the local embedding model (its runtime, weights and first run) in a background thread, so that
        it overlaps what the command does meanwhile (importing the stores, SQL, parsing). Any failure is left
        for the first real embed to report."""
        if self._embedder is not None or self._starting is not None or self.settings.embedding_provider != "local":
            return
        self._starting = threading.Thread(target=self._warm_embedder, name="membot-embedder-start", daemon=True)
        self._starting.start()

    def _warm_embedder(self) -> None:
        try:
            self.embedder.embed(["start"])
        except Exception:  # noqa: BLE001  (the command's own embed raises it again, with its message)
            log.debug("starting the embedding model failed", exc_info=True)

    def warm_up(self) -> None:
        """For a serving process: start the embedding model and open the passage store (Milvus Lite takes about
        2 s to start) in the background while the adapter connects, so the first question waits for neither."""
        self.start_embedder()
        if self._opening is None:
            self._opening = threading.Thread(target=self._open_store, args=(self.passages,),
                                             name="membot-store-open", daemon=True)
            self._opening.start()

    @staticmethod
    def _open_store(store: PassageStore) -> None:
        try:
            store.client  # noqa: B018  (connects, or starts Milvus Lite)
        except Exception:  # noqa: BLE001  (the first real use reports it, with its message)
            log.debug("opening the passage store failed", exc_info=True)

    @cached_property
    def searcher(self) -> Searcher:
        from agent.archival.index import IndexCache
        from agent.archival.search import Searcher
        from agent.archival.server_search import ServerSearch
        from agent.archival.snapshots import Snapshots

        # The embedder is passed lazily: loading it takes seconds, and most searches of a command never embed.
        shared = self.passages.shared
        namespace = f"{self.settings.milvus_uri}\n{self.passages.prefix}"
        snapshots = Snapshots(self.settings.home / "cache" / "search", namespace)
        return Searcher(IndexCache(self.passages, self.settings.search_cache_rows, snapshots), lambda: self.embedder,
                        ServerSearch(shared) if shared is not None else None)

    @cached_property
    def sources(self) -> Sources:
        from agent.archival.sources import Sources

        return Sources(self.catalog, self.passages, self.searcher)

    @cached_property
    def loader(self) -> Loader:
        from agent.loading.loader import Loader

        s = self.settings
        return Loader(self.catalog, self.passages, self.embedder, s.chunk_tokens, s.chunk_overlap,
                      int(s.max_file_mb * 1_000_000), parser=self.parser)

    @cached_property
    def parser(self) -> ParserPool:
        """The parser processes every load reads PDF, .docx and HTML files in."""
        from agent.loading.limits import ExpansionLimits
        from agent.loading.parser import ParserPool

        s = self.settings
        return ParserPool(ExpansionLimits(s.max_pages, s.max_text_chars, s.max_page_chars,
                                          int(s.max_expanded_mb * 1_000_000), s.parse_seconds, s.parse_memory_mb))

    # schedules (the book and the board) -----------------------------------------------------------------
    @cached_property
    def deliveries(self) -> DeliveryRegistry:
        """Adapters register here how to post a timed event's replies on their platform."""
        from agent.schedule.delivery import DeliveryRegistry

        return DeliveryRegistry()

    @cached_property
    def board(self) -> JobBoard:
        from agent.schedule.board import JobBoard

        return JobBoard(self.engine)

    @cached_property
    def limits(self) -> ScheduleLimits:
        from agent.schedule.book import ScheduleLimits

        s = self.settings
        return ScheduleLimits(s.schedule_max_per_channel, timedelta(minutes=s.schedule_min_interval_minutes),
                              timedelta(minutes=s.schedule_grace_minutes), s.timezone)

    @cached_property
    def book(self) -> ScheduleBook:
        from agent.schedule.book import ScheduleBook

        return ScheduleBook(self.engine, self.board, self.limits, self.clock)

    # turns ---------------------------------------------------------------------------------------------
    @property
    def model_configured(self) -> bool:
        return self._model is not None or self.settings.llm_configured

    def require_model(self) -> None:
        """Fail now, before connecting: no chat model configured (with how to configure one), or a context window
        too small for membot's fixed prompt."""
        if not self.model_configured:
            raise ConfigError(LLM_HELP)
        _ = self.runner

    @cached_property
    def model(self) -> ChatModel:
        if self._model is not None:
            return self._model
        s = self.settings
        if not s.llm_configured:
            return NoModel()
        from agent.llm import OpenAIChat

        return OpenAIChat(s.llm_model, reveal(s.openai_api_key), s.openai_base_url, s.llm_timeout, s.llm_retries,
                          max_tokens=s.reply_tokens, stream=s.llm_stream == "on")

    @cached_property
    def runner(self) -> TurnRunner:
        from agent.context import Budget
        from agent.loop import Limits, TurnRunner
        from agent.overflow import check_fits
        from agent.tools.base import BASE_TOOLS
        from agent.tools.schedule import SCHEDULE_TOOLS

        s = self.settings
        budget = Budget(s.context_window, reply_reserve=s.reply_tokens)
        runner = TurnRunner(self.model, BASE_TOOLS + SCHEDULE_TOOLS,
                            Limits(budget, max_steps=s.max_steps, reply_mode=s.reply_mode), schedules=self.book)
        check_fits(budget, runner.fixed_estimate())  # at start, not at the first message
        return runner

    @cached_property
    def inbox(self) -> Inbox:
        """Questions from acceptance to answer, leased to this process; expired ones are answered with an apology
        through the deliveries (agent/inbox.py)."""
        from agent.inbox import Inbox

        return Inbox(self.engine, self.deliveries, lease=self.settings.inbox_lease_seconds)

    @cached_property
    def agents(self) -> AgentService:
        from agent.pool import TurnPool
        from agent.presets import Presets
        from agent.service import AgentService

        # The embedder is passed lazily, as for the searcher.
        return AgentService(self.engine, self.runner, self.passages, self.searcher, self.catalog,
                            lambda: self.embedder, Presets(self.settings.home),
                            pool=TurnPool(self.settings.turn_workers), inbox=self.inbox)

    # channels and firing -------------------------------------------------------------------------------
    @cached_property
    def chat(self) -> ChatCore:
        """The platform-neutral channel operations every chat adapter translates to."""
        from agent.chat import ChatCore

        return ChatCore(self.agents, self.loader, self.catalog, schedules=self.book,
                        public_uploads=self.settings.public_uploads, sources=self.sources)

    @cached_property
    def schedules(self) -> ScheduleService:
        from agent.schedule.service import ScheduleService

        return ScheduleService(self.engine, self.agents, self.deliveries, self.limits)

    @cached_property
    def timer(self) -> Timer:
        """Runs the schedules of each platform with a registered delivery while this process leads it."""
        from agent.schedule.timer import Timer

        return Timer(self.engine, self.board, self.deliveries.platforms, self.schedules.fire, self.book.reconcile,
                     self.clock, self.settings.schedule_poll_seconds, renew=self.schedules.renew,
                     resume=self.schedules.resume)

    def start_scheduler(self) -> None:
        """Start the timer's passes, and the inbox's (leases; questions of a process that died are answered).
        Register the adapters' deliveries first."""
        self.timer.start()
        self.agents.inbox.start()

    def close(self) -> None:
        if self._starting is not None:
            self._starting.join()  # an interpreter exiting under a model still loading in C++ may crash
        if self._opening is not None:
            self._opening.join()
        if "timer" in self.__dict__:
            self.timer.stop()  # no new firings; the turns already queued finish below
        if "board" in self.__dict__:
            self.board.close()
        if "agents" in self.__dict__:
            self.agents.close(grace=self.settings.shutdown_grace)
        if "parser" in self.__dict__:
            self.parser.close()
        if "passages" in self.__dict__:
            self.passages.close()
        if "engine" in self.__dict__:
            self.engine.dispose()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def open_container() -> Container:
    """The container on the settings of this process (environment, ~/.membot/config.toml, defaults)."""
    return Container(load_settings())
