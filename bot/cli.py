"""The `membot` command line. Heavy modules are imported inside commands so `--help` stays instant."""

from __future__ import annotations

import gc
import json
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from bot import __version__
from bot.db_commands import db
from bot.serve import serve

if TYPE_CHECKING:
    from bot.container import Container
    from bot.settings import Settings

log = logging.getLogger("membot")
INTERRUPTED = "Interrupted. Nothing half-loaded was kept; run the same command again to finish."
STOPPING = "Stopping: the file being loaded is taken back (Ctrl-C again to quit at once)."
QUIT = "Quit. The unfinished file is removed by the next load; run the same command again to finish."
SCOPE_HELP = "Whose sources: 'local' for the CLI, or a workspace such as slack:T123 or discord:456."


def scope_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--scope", default="local", show_default=True, help=SCOPE_HELP)(fn)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="membot")
def cli() -> None:
    """membot: a memory-backed MemGPT-style agent for every Slack and Discord channel."""


def settings() -> Settings:
    from bot.settings import load_settings

    return load_settings()


def container() -> Container:
    from bot.container import Container

    return Container(settings())


# configure -----------------------------------------------------------------------------------------------
@cli.command()
@click.option("--storage", type=click.Choice(["milvus"]), help="Storage backend for archival data.")
@click.option("--milvus-uri", help="A local path (Milvus Lite) or http://host:19530 (a Milvus server).")
@click.option("--database-url", help="SQLAlchemy URL: sqlite:///path or postgresql://user@host/db.")
@click.option("--embedding-provider", type=click.Choice(["local", "openai"]))
@click.option("--embedding-model")
@click.option("--openai-base-url", help="Any OpenAI-compatible endpoint (OpenAI, Ollama, vLLM, llama.cpp).")
@click.option("--openai-api-key", help="Stored in config.toml (mode 600); never printed.")
@click.option("--llm-model")
@click.option("--context-window", type=int)
@click.option("--slack-bot-token", help="xoxb-... (stored, never printed).")
@click.option("--slack-app-token", help="xapp-... for Socket Mode (stored, never printed).")
@click.option("--slack-signing-secret", help="For HTTP mode (stored, never printed).")
@click.option("--discord-token", help="The Discord bot token (stored, never printed).")
@click.option("--discord-guild-id", help="A Discord server id: slash commands sync there at every start.")
@click.option("-y", "--non-interactive", is_flag=True, help="Write the given flags without asking anything.")
def configure(non_interactive: bool, storage: str | None, **values: Any) -> None:
    """Write ~/.membot/config.toml, asking for each setting when run in a terminal."""
    from bot.configure import run_configure

    interactive = not non_interactive and sys.stdin.isatty() and not any(v is not None for v in values.values())
    run_configure(settings(), values, interactive)


# load ----------------------------------------------------------------------------------------------------
@cli.group()
def load() -> None:
    """Load files into a named data source."""


@load.command("directory")
@click.option("--name", required=True, help="The data source to load into (created if new).")
@click.option("--input-files", "input_files", multiple=True, help="Files to load (repeat, or list them after).")
@click.option("--input-dir", help="A directory to load.")
@click.option("--recursive", is_flag=True, help="Also load the directory's subdirectories.")
@click.option("--extensions", default=".txt,.md,.pdf", show_default=True,
              help="Comma-separated extensions to take from --input-dir (.docx and .html also work).")
@click.argument("more_files", nargs=-1, type=click.Path())
@scope_option
def load_directory(name: str, input_files: tuple[str, ...], input_dir: str | None, recursive: bool,
                   extensions: str, more_files: tuple[str, ...], scope: str) -> None:
    """Load --input-files or an --input-dir into source NAME: chunk, embed, store."""
    from agent.loading.inputs import collect_files
    from bot.process import ctrl_c_between_steps
    from bot.progress import RichLoadProgress

    files, passed_over = collect_files(input_files + more_files, input_dir, recursive,
                                       [e.strip() for e in extensions.split(",") if e.strip()])
    if not files:
        raise click.ClickException(f"No files to load (extensions: {extensions}).")
    with ctrl_c_between_steps(STOPPING, QUIT) as stop, container() as c, RichLoadProgress(len(files)) as progress:
        c.start_embedder()  # the model starts while the stores open and the first file is parsed
        c.parser.start(f.name for f in files)  # and so does the parser process, if a file needs one
        report = c.loader.load(scope, name, files, progress, stop=stop)
        if report.passages:
            _prepare_search(c, scope, report.source)
    for outcome in report.of("failed"):
        click.echo(f"Failed: {outcome.name}: {outcome.reason}", err=True)
    for outcome in report.of("unchanged"):
        click.echo(f"Skipped: {outcome.name}: {outcome.reason}", err=True)
    if passed_over:
        click.echo(f"Passed over {passed_over} file(s) with other extensions (see --extensions).", err=True)
    click.echo(report.summary())
    if report.of("failed") and not report.passages and not report.of("unchanged"):
        sys.exit(1)


# sources -------------------------------------------------------------------------------------------------
@cli.group()
def sources() -> None:
    """List, show and delete data sources."""


@sources.command("list")
@scope_option
def sources_list(scope: str) -> None:
    """Every source with its files, documents and passages."""
    from adapters.views import sources_table

    with container() as c:  # SQL only: works while another process holds Milvus Lite
        sources_table(c.catalog.summaries(scope))


@sources.command("show")
@click.argument("name")
@scope_option
def sources_show(name: str, scope: str) -> None:
    """One source: its embedding model and each file loaded."""
    from adapters.views import source_detail
    from agent.archival.search import LITE_MODE

    with container() as c:
        # SQL only on Milvus Lite (it may be held by another process); a server says how it searches
        mode = LITE_MODE if c.settings.milvus_is_local else c.searcher.mode
        source_detail(*c.catalog.detail(scope, name), search_mode=mode)


@sources.command("delete")
@click.argument("name")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@scope_option
def sources_delete(name: str, yes: bool, scope: str) -> None:
    """Delete a source, its passages, and every agent's link to it."""
    with container() as c:
        summary = c.catalog.detail(scope, name)[0]
        if not yes and sys.stdin.isatty():
            click.confirm(f"Delete {name} ({summary.passages} passages)?", abort=True)
        c.sources.delete(scope, name)
    click.echo(f"Deleted source {name} and its {summary.passages} passages.")


@sources.command("migrate")
@click.option("--from-prefix", default="membot", show_default=True,
              help="The prefix of the old collections (membot_src_<id>, membot_agent_<id>).")
def sources_migrate(from_prefix: str) -> None:
    """Move passages of the old one-collection-per-source layout on a Milvus server into the shared layout."""
    from agent.archival.migrate import migrate

    def show(m: Any) -> None:
        click.echo(f"{m.old} -> {m.new}: {m.rows} passages" if not m.note else f"{m.old}: {m.note}")

    with container() as c:
        moved = migrate(c.passages, c.engine, from_prefix, show)
    done = [m for m in moved if not m.note]
    click.echo(f"Moved {len(done)} collection(s), {sum(m.rows for m in done)} passages." if moved
               else f"No collections of the old layout ({from_prefix}_src_<id>, {from_prefix}_agent_<id>) found.")


def _prepare_search(c: Container, scope: str, name: str) -> None:
    """While Milvus is open: the source's search snapshot, so the first `membot search` need not open it. A
    cache only: if it cannot be written, the search reads Milvus instead."""
    try:
        c.sources.prepare(scope, [name])
    except Exception:
        log.warning("could not write the search snapshot of %s; the first search reads Milvus", name, exc_info=True)


# search --------------------------------------------------------------------------------------------------
@cli.command()
@click.argument("name")
@click.argument("query")
@click.option("-k", "k", default=5, show_default=True, help="Results per page.")
@click.option("--page", default=1, show_default=True, help="Page number, from 1.")
@click.option("--mode", type=click.Choice(["hybrid", "dense", "keyword"]), default="hybrid", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@scope_option
def search(name: str, query: str, k: int, page: int, mode: str, as_json: bool, scope: str) -> None:
    """Search source NAME (or several, comma-separated; quote a name that holds a comma: '"a,b",c') for QUERY."""
    from adapters.views import search_results
    from agent.names import split_names

    with container() as c:
        if mode != "keyword":
            c.start_embedder()  # the model starts while the stores import and the sources are looked up
        # A source whose whole name is NAME (commas and all) wins over splitting it.
        names = [name] if c.catalog.find(scope, name) is not None else split_names(name)
        result = c.sources.search(scope, names, query, k=k, page=page, mode=mode)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
    else:
        search_results(result)


# agents and chat -----------------------------------------------------------------------------------------
@cli.command()
@click.option("--agent", "agent_name", help="The agent to chat with (created if new).")
@click.option("--persona", help="Persona preset for a new agent (membot personas list).")
@click.option("--human", help="Human preset for a new agent (membot humans list).")
@click.option("--first", is_flag=True, help="You speak first (otherwise a new agent greets you).")
@scope_option
def run(agent_name: str | None, persona: str | None, human: str | None, first: bool, scope: str) -> None:
    """Chat with an agent in the terminal; also reads piped input, one message or /command per line."""
    from adapters.console import Console
    from agent.loop import Incoming

    interactive = sys.stdin.isatty()
    with container() as c:
        c.require_model()  # fails here, before any prompt, when no model is configured
        service = c.agents
        name = agent_name or _choose_agent(service, scope, interactive)
        is_new = service.find(scope, name) is None
        agent = service.open(scope, name, persona, human)
        click.echo(f"{'Created' if is_new else 'Continuing with'} agent {agent.name}. /help lists commands.")
        console = Console(c.chat, agent.name, scope, interactive, schedules=c.book)
        c.deliveries.register("local", console.deliver)  # timed events of local agents print here
        c.start_scheduler()
        if is_new and not first:
            console.service.send(console.agent_id, Incoming("A person has logged in for the first time: greet them.",
                                                            console.speaker, kind="login"), console.show)
        console.run(_lines(interactive))


def _choose_agent(service: Any, scope: str, interactive: bool) -> str:
    existing = [a.agent.name for a in service.summaries(scope)]
    if not interactive:
        return "console"
    if existing:
        click.echo("Agents: " + ", ".join(existing))
    return str(click.prompt("Agent name (an existing one, or a new name)", default=existing[-1] if existing
                            else "console"))


def _lines(interactive: bool) -> Any:
    if not interactive:
        yield from sys.stdin
        return
    while True:
        try:
            yield input("> ")
        except EOFError:
            return


@cli.group()
def agents() -> None:
    """List, show and delete agents."""


@agents.command("list")
@scope_option
def agents_list(scope: str) -> None:
    from adapters.views import agents_table

    with container() as c:
        agents_table(c.agents.summaries(scope))


@agents.command("show")
@click.argument("name")
@scope_option
def agents_show(name: str, scope: str) -> None:
    from adapters.views import memory_view

    with container() as c:
        service = c.agents
        agent = service.get(scope, name)
        click.echo(f"Agent {agent.name} (persona preset {agent.persona_preset}, created "
                   f"{agent.created_at:%Y-%m-%d %H:%M})")
        memory_view(service.memory(int(agent.id or 0)))


@agents.command("delete")
@click.argument("name")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@scope_option
def agents_delete(name: str, yes: bool, scope: str) -> None:
    with container() as c:
        service = c.agents
        service.get(scope, name)
        if not yes and sys.stdin.isatty():
            click.confirm(f"Delete agent {name} and all its memory?", abort=True)
        service.delete(scope, name)
    click.echo(f"Deleted agent {name}.")


def _presets() -> Any:
    from agent.presets import Presets

    return Presets(settings().home)


def preset_group(kind: str) -> click.Group:
    group = click.Group(kind, help=f"List, add and show {kind} presets.")

    @group.command("list")
    def list_() -> None:
        for name in _presets().names(kind):
            click.echo(name)

    @group.command("show")
    @click.argument("name")
    def show(name: str) -> None:
        click.echo(_presets().get(kind, name))

    @group.command("add")
    @click.argument("name")
    @click.option("--text", help="The preset text (otherwise read from --file or standard input).")
    @click.option("--file", "path", type=click.Path(exists=True, dir_okay=False))
    def add(name: str, text: str | None, path: str | None) -> None:
        from pathlib import Path

        body = text if text is not None else Path(path).read_text() if path else sys.stdin.read()
        click.echo(f"Saved {kind[:-1]} preset {name} to {_presets().add(kind, name, body)}")

    return group


@cli.command()
@click.option("--quick", is_flag=True, help="Skip the probe that fills the whole context window (slow on CPUs).")
def doctor(quick: bool) -> None:
    """Check the chat model setup: tool calling, streaming, the window it accepts, with the fix for each failure."""
    from bot.doctor import CHECKS, check_window, run_doctor

    with container() as c:
        ok = run_doctor(c, [check for check in CHECKS if not (quick and check is check_window)])
    if not ok:
        sys.exit(1)


cli.add_command(preset_group("personas"))
cli.add_command(preset_group("humans"))
cli.add_command(serve)
cli.add_command(db)


# entry point ---------------------------------------------------------------------------------------------
def main() -> None:
    from adapters.report import report
    from agent.errors import UserError
    from bot.home import private_umask

    private_umask()
    try:
        cli.main(standalone_mode=False)
        # The command is done: the interpreter's last collections need not walk every object the imports made
        # (about 0.1 s of a cold `membot search`). Nothing is lost: exiting frees the memory all the same.
        gc.freeze()
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # click turns Ctrl-C into Abort outside standalone mode
            click.echo(INTERRUPTED, err=True)
            sys.exit(130)
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UserError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("\n" + INTERRUPTED, err=True)
        sys.exit(130)
    except Exception:
        _log_to_file()
        click.echo(report("membot stopped on an unexpected error", log=log), err=True)
        sys.exit(2)


def _scrub(handler: logging.Handler) -> None:
    from bot.logsafe import scrub_logs

    try:
        current: Settings | None = settings()
    except Exception:  # the settings are what failed: still mask whatever looks like a key
        current = None
    scrub_logs(current, [handler])


def _log_to_file() -> None:
    try:
        from bot.home import private_home

        home = private_home(settings().home)
        handler: logging.Handler = logging.FileHandler(home / "membot.log")
    except Exception:
        handler = logging.StreamHandler(sys.stderr)
    _scrub(handler)
    logging.basicConfig(handlers=[handler], format="%(asctime)s %(levelname)s %(name)s %(message)s")
