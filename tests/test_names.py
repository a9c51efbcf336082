"""Hostile and odd names: a newline in a file name, NFC and NFD spellings, names differing by case, names too
long for their columns (on SQLite and PostgreSQL), and a source name holding a comma."""

from __future__ import annotations

import threading
import unicodedata
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.errors import UserError
from agent.loading.inputs import InputFile
from agent.names import clean_name, display, split_names
from bot.container import Container
from tests.conftest import make_settings
from tests.test_cli import cli  # noqa: F401  (the in-process CLI fixture)

TEXT = b"The name tests file the pier code PIER-NAMES-3 under every spelling."


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest, home: Path, embedder) -> Iterator[tuple[Container, str]]:
    """A container on SQLite or on PostgreSQL, and a scope of its own (the PostgreSQL database is shared)."""
    env = {"MEMBOT_DATABASE_URL": request.getfixturevalue("pg_url")} if request.param == "postgresql" else {}
    with Container(make_settings(home, **env), embedder=embedder) as c:
        yield c, f"names-{uuid.uuid4().hex[:8]}"


def test_display_removes_controls_and_bidi_overrides() -> None:
    assert display("evil\nFORGED ROW\r\x1b[31mred\x07") == "evil FORGED ROW [31mred"
    assert display("invoice\u202egnp.exe") == "invoice gnp.exe"
    assert clean_name("  Quarterly\treport  ") == "Quarterly report"


def test_a_newline_in_a_file_name_forges_no_line(container: Container, capsys: pytest.CaptureFixture[str]) -> None:
    from adapters.views import source_detail

    forged = "notes.txt\nFORGED.txt      99  999  1  deadbeef  2020-01-01 00:00"
    report = container.loader.load("local", "forgery", [InputFile.from_bytes(forged + ".txt", TEXT)])
    assert [o.status for o in report.outcomes] == ["loaded"]
    capsys.readouterr()
    source_detail(*container.sources.show("local", "forgery"))
    lines = capsys.readouterr().out.splitlines()
    assert not [line for line in lines if line.startswith("FORGED")]
    assert lines[-1].startswith("notes.txt FORGED.txt 99 999 1 deadbeef 2020-01-01 00:00.txt")
    assert lines[-3].startswith("file ") and set(lines[-2]) <= {"-", " "}  # header, rule, the one row


def test_nfc_and_nfd_spellings_are_one_source(any_db: tuple[Container, str]) -> None:
    c, scope = any_db
    nfd, nfc = unicodedata.normalize("NFD", "café"), unicodedata.normalize("NFC", "café")
    assert nfd != nfc
    c.loader.load(scope, nfd, [InputFile.from_bytes("a.txt", TEXT)])
    c.loader.load(scope, nfc, [InputFile.from_bytes(unicodedata.normalize("NFD", "é.txt"), TEXT + b" more")])
    [summary] = c.sources.summaries(scope)
    assert summary.source.name == nfc and summary.files == 2
    assert {d.file_name for d in c.catalog.documents(int(summary.source.id or 0))} == {"a.txt", "é.txt"}
    assert c.sources.search(scope, [nfd], "PIER-NAMES-3", mode="keyword").total == 2


def test_names_that_differ_by_case_are_one_source(any_db: tuple[Container, str]) -> None:
    c, scope = any_db
    c.loader.load(scope, "Report", [InputFile.from_bytes("a.txt", TEXT)])
    report = c.loader.load(scope, "report", [InputFile.from_bytes("b.txt", TEXT + b" again")])
    assert report.source == "Report"
    assert [s.source.name for s in c.sources.summaries(scope)] == ["Report"]
    assert c.sources.search(scope, ["REPORT"], "PIER-NAMES-3", mode="keyword").total == 2
    assert c.sources.show(scope, "rEpOrT")[0].files == 2


def test_two_loads_racing_on_case_make_one_source(any_db: tuple[Container, str]) -> None:
    """Both see no source, both insert: the unique index on lower(name) lets one win, the other joins it."""
    c, scope = any_db
    barrier = threading.Barrier(2)
    real_find = c.catalog.find

    def find_in_step(s: str, n: str):  # type: ignore[no-untyped-def]
        found = real_find(s, n)
        if found is None:
            barrier.wait(5)  # both have looked, neither has inserted
        return found

    c.catalog.find = find_in_step  # type: ignore[method-assign]
    made = []
    threads = [threading.Thread(target=lambda n=n: made.append(c.catalog.get_or_create(scope, n, "m", 8, 100)))
               for n in ("Ledger", "LEDGER")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    c.catalog.find = real_find  # type: ignore[method-assign]
    assert len(made) == 2 and made[0].id == made[1].id


def test_lengths_are_checked_up_front(any_db: tuple[Container, str]) -> None:
    c, scope = any_db
    with pytest.raises(UserError, match="The source name is 300 characters long; the limit is 200"):
        c.loader.load(scope, "n" * 300, [InputFile.from_bytes("a.txt", TEXT)])
    deep = "/".join(["folder" * 10] * 20) + "/deep.txt"  # 1,228 characters
    report = c.loader.load(scope, "paths", [InputFile.from_bytes(deep, TEXT),
                                            InputFile.from_bytes("short.txt", TEXT + b" short")])
    assert [o.status for o in report.outcomes] == ["failed", "loaded"]
    assert "its name (with its folders) is 1,228 characters long; the limit is 1,000" in report.outcomes[0].reason
    with pytest.raises(UserError, match="The agent name is 250 characters long"):
        c.agents.open(scope, "a" * 250)
    with pytest.raises(UserError, match="The source name is empty"):
        c.loader.load(scope, "\n\t ", [InputFile.from_bytes("a.txt", TEXT)])


def test_split_names_honours_quotes() -> None:
    assert split_names("a, b,c") == ["a", "b", "c"]
    assert split_names('"a,b", c') == ["a,b", "c"]
    assert split_names('"say ""hi"", then",x') == ['say "hi", then', "x"]


def test_a_source_name_with_a_comma_can_be_searched(cli, container: Container) -> None:  # noqa: F811
    container.loader.load("local", "a,b", [InputFile.from_bytes("a.txt", TEXT)])
    container.loader.load("local", "c", [InputFile.from_bytes("c.txt", TEXT + b" in c")])
    container.close()  # the CLI opens Milvus Lite itself
    whole = cli("search", "a,b", "PIER-NAMES-3", "--mode", "keyword", "--json")
    assert whole.code == 0, whole.err
    assert '"a.txt"' in whole.out and '"c.txt"' not in whole.out
    both = cli("search", '"a,b",c', "PIER-NAMES-3", "--mode", "keyword", "--json")
    assert both.code == 0, both.err
    assert '"a.txt"' in both.out and '"c.txt"' in both.out
