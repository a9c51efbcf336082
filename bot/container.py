"""The composition root: builds the stores, the embedder and the services once, and closes them."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from agent.archival.catalog import Catalog
from agent.archival.index import IndexCache
from agent.archival.milvus_store import PassageStore
from agent.archival.search import Searcher
from agent.archival.snapshots import Snapshots
from agent.archival.sources import Sources
from agent.embeddings.base import Embedder
from agent.llm import ChatModel
from agent.loading.loader import Loader
from agent.loop import TurnRunner
from agent.service import AgentService
from bot.settings import Settings

if TYPE_CHECKING:
    from agent.schedule.delivery import DeliveryRegistry
    from agent.schedule.service import ScheduleService
    from agent.schedule.timer import Timer

LLM_HELP = """No chat model is configured. Set OPENAI_API_KEY (for api.openai.com), or OPENAI_BASE_URL for any
OpenAI-compatible server, and MEMBOT_LLM_MODEL, for example:
  export OPENAI_API_KEY=sk-...                        MEMBOT_LLM_MODEL=gpt-4o-mini
  export OPENAI_BASE_URL=http://localhost:11434/v1    MEMBOT_LLM_MODEL=llama3.1      # Ollama
  export OPENAI_BASE_URL=http://localhost:8000/v1     MEMBOT_LLM_MODEL=Qwen/Qwen2.5-7B-Instruct  # vLLM
or save them with `membot configure`."""


def make_embedder(settings: Settings) -> Embedder:
    if settings.embedding_provider == "openai":
        from agent.embeddings.remote import OpenAIEmbedder

        return OpenAIEmbedder(settings.embedding_model, settings.openai_api_key, settings.openai_base_url,
                              settings.embedding_batch_size)
    from agent.embeddings.models import local_embedder

    return local_embedder(settings.embedding_model, settings.embedding_batch_size)


class Container(AbstractContextManager["Container"]):
    """Everything is built lazily on first use, so a command opens only what it needs."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None, model: ChatModel | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._model = model
        self._clock = clock  # the schedules' notion of now (tests move it by hand)

    @cached_property
    def engine(self) -> Engine:
        from agent.db.engine import open_engine

        return open_engine(self.settings.database_url)

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.engine)

    @cached_property
    def passages(self) -> PassageStore:
        # Connected on first use: a search answered from snapshots never imports pymilvus or opens Milvus.
        return PassageStore(self.settings.milvus_uri, connect=False)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = make_embedder(self.settings)
        return self._embedder

    @cached_property
    def searcher(self) -> Searcher:
        namespace = f"{self.settings.milvus_uri}\n{self.passages.prefix}"
        snapshots = Snapshots(self.settings.home / "cache" / "search", namespace)
        return Searcher(IndexCache(self.passages, self.settings.search_cache_rows, snapshots), lambda: self.embedder)

    @cached_property
    def sources(self) -> Sources:
        return Sources(self.catalog, self.passages, self.searcher)

    @cached_property
    def loader(self) -> Loader:
        s = self.settings
        return Loader(self.catalog, self.passages, self.embedder, s.chunk_tokens, s.chunk_overlap,
                      int(s.max_file_mb * 1_000_000))

    @property
    def model(self) -> ChatModel:
        if self._model is None:
            from agent.errors import ConfigError
            from agent.llm import OpenAIChat

            s = self.settings
            if not s.llm_configured:
                raise ConfigError(LLM_HELP)
            self._model = OpenAIChat(s.llm_model, s.openai_api_key, s.openai_base_url, s.llm_timeout, s.llm_retries)
        return self._model

    @cached_property
    def runner(self) -> TurnRunner:
        from agent.context import Budget
        from agent.loop import Limits
        from agent.tools.base import BASE_TOOLS
        from agent.tools.schedule import SCHEDULE_TOOLS

        s = self.settings
        return TurnRunner(self.model, BASE_TOOLS + SCHEDULE_TOOLS,
                          Limits(Budget(s.context_window), max_steps=s.max_steps), schedules=self.schedules)

    @cached_property
    def agents(self) -> AgentService:
        from agent.presets import Presets

        return AgentService(self.engine, lambda: self.runner, self.passages, self.searcher, self.catalog,
                            lambda: self.embedder, Presets(self.settings.home))

    @cached_property
    def deliveries(self) -> DeliveryRegistry:
        """Adapters register here how to post a timed event's replies on their platform."""
        from agent.schedule.delivery import DeliveryRegistry

        return DeliveryRegistry()

    @cached_property
    def schedules(self) -> ScheduleService:
        from datetime import timedelta

        from agent.schedule.service import ScheduleLimits, ScheduleService
        from agent.schedule.timer import Timer, system_clock

        s = self.settings
        clock = self._clock or system_clock
        timer = Timer(self.engine, self.deliveries.platforms, clock, s.schedule_poll_seconds)
        limits = ScheduleLimits(s.schedule_max_per_channel, timedelta(minutes=s.schedule_min_interval_minutes),
                                timedelta(minutes=s.schedule_grace_minutes), s.timezone)
        return ScheduleService(self.engine, lambda: self.agents, self.deliveries, timer, limits, clock)

    @property
    def timer(self) -> Timer:
        """The APScheduler facade behind the schedules (bound to them)."""
        return self.schedules.timer

    def start_scheduler(self) -> None:
        """Run the schedules of each platform with a registered delivery while this process leads it. Register
        the adapters' deliveries first."""
        self.timer.start()

    def close(self) -> None:
        if "schedules" in self.__dict__:
            self.timer.stop()  # no new firings; the turns already queued finish below
        if "agents" in self.__dict__:
            self.agents.close()
        if "passages" in self.__dict__:
            self.passages.close()
        if "engine" in self.__dict__:
            self.engine.dispose()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
