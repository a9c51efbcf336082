"""Search snapshots: a new process answers a search from a local file instead of opening Milvus, and only
while SQL says the source is unchanged; deleted, recreated, changed or damaged means read again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agent.loading.inputs import InputFile
from bot.container import Container
from tests.conftest import ROOT, make_settings, run_cli

QUERY = "Which service drops connections after the firmware update?"


def text(name: str, body: str) -> InputFile:
    return InputFile.from_bytes(name, body.encode())


def hits(c: Container, name: str = "ops", query: str = QUERY, mode: str = "dense") -> list[tuple[str, str]]:
    page = c.sources.search("local", [name], query, k=10, mode=mode)
    return [(h.file_name, h.text) for h in page.hits]


def snapshot_files(home: Path) -> list[Path]:
    return sorted((home / "cache" / "search").glob("*.npz"))


def search_in_a_new_process(home: Path, query: str, k: int) -> subprocess.CompletedProcess[str]:
    """`membot search ops QUERY -k K` in a fresh process, which prints afterwards whether it imported pymilvus."""
    probe = (f"import sys, runpy; sys.argv = ['membot', 'search', 'ops', {query!r}, '-k', '{k}']\n"
             "try:\n    runpy.run_module('bot', run_name='__main__')\nexcept SystemExit:\n    pass\n"
             "print('PYMILVUS', 'pymilvus' in sys.modules)")
    env = {"MEMBOT_HOME": str(home), "HOME": str(home), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_a_second_process_searches_without_opening_milvus(home: Path, embedder) -> None:
    with Container(make_settings(home), embedder=embedder) as c:
        c.loader.load("local", "ops", [text("vpn.txt", "The VPN gateway drops connections after the firmware "
                                                       "update. Restarting it helps for an hour."),
                                       text("mail.txt", "The mail relay rejects messages larger than 20 MB.")])
        first = hits(c)
    assert len(snapshot_files(home)) == 1
    with Container(make_settings(home), embedder=embedder) as again:  # a new process: an empty memory cache
        assert hits(again) == first
        assert again.passages._connection is None  # answered from the snapshot, Milvus never opened
    assert first[0][0] == "vpn.txt"


def test_a_change_is_never_hidden_by_an_old_snapshot(home: Path, embedder) -> None:
    with Container(make_settings(home), embedder=embedder) as c:
        c.loader.load("local", "ops", [text("vpn.txt", "The VPN gateway drops connections after the update.")])
        hits(c)
        c.loader.load("local", "ops", [text("printer.txt", "The printer on floor two jams on A3 paper.")])
    with Container(make_settings(home), embedder=embedder) as again:
        assert {f for f, _ in hits(again, query="printer jams")} == {"vpn.txt", "printer.txt"}
    assert len(snapshot_files(home)) == 1  # the old revision's file is gone


def test_a_deleted_and_recreated_source_does_not_see_the_old_snapshot(home: Path, embedder) -> None:
    with Container(make_settings(home), embedder=embedder) as c:
        c.loader.load("local", "ops", [text("old.txt", "Old secret text about the payroll export.")])
        hits(c)
        old_id = c.catalog.get("local", "ops").id
        c.sources.delete("local", "ops")
        assert snapshot_files(home) == []
        c.loader.load("local", "ops", [text("new.txt", "New text about the badge reader.")])
        assert c.catalog.get("local", "ops").id == old_id  # SQLite reused the id: only the generation differs
    with Container(make_settings(home), embedder=embedder) as again:
        assert [f for f, _ in hits(again, query="payroll export")] == ["new.txt"]


def test_a_damaged_snapshot_is_ignored_and_rewritten(home: Path, embedder) -> None:
    with Container(make_settings(home), embedder=embedder) as c:
        c.loader.load("local", "ops", [text("vpn.txt", "The VPN gateway drops connections after the update.")])
        expected = hits(c)
    [snapshot] = snapshot_files(home)
    snapshot.write_bytes(b"PK\x03\x04 not a zip any more")
    with Container(make_settings(home), embedder=embedder) as again:
        assert hits(again) == expected
        assert again.passages._connection is not None  # read from Milvus instead
    with Container(make_settings(home), embedder=embedder) as third:
        assert hits(third) == expected and third.passages._connection is None


def test_a_source_still_loading_more_shows_only_its_ready_files(home: Path, embedder) -> None:
    """A snapshot holds every row; what is visible comes from SQL at search time, as without snapshots."""
    with Container(make_settings(home), embedder=embedder) as c:
        c.loader.load("local", "ops", [text("vpn.txt", "The VPN gateway drops connections after the update.")])
        source = c.catalog.get("local", "ops")
        c.catalog.begin_document(int(source.id or 0), "half.txt", "f" * 64, 10, 1, 1)  # a load under way
        hits(c)
    with Container(make_settings(home), embedder=embedder) as again:
        assert [f for f, _ in hits(again)] == ["vpn.txt"]
        assert again.passages._connection is None


def test_membot_search_imports_no_milvus_client_the_second_time(home: Path, embedder) -> None:
    with Container(make_settings(home), embedder=embedder) as c:
        c.loader.load("local", "ops", [text("vpn.txt", "The VPN gateway drops connections after the update.")])
    runs = [search_in_a_new_process(home, "VPN gateway", k=1) for _ in range(2)]
    for run in runs:
        assert "vpn.txt" in run.stdout, run.stderr
    assert "PYMILVUS True" in runs[0].stdout  # the first search reads Milvus and writes the snapshot
    assert "PYMILVUS False" in runs[1].stdout  # the second is answered from it


def test_after_membot_load_even_the_first_search_opens_no_milvus(home: Path, tmp_path: Path, embedder) -> None:
    (tmp_path / "vpn.txt").write_text("The VPN gateway drops connections after the firmware update.")
    (tmp_path / "mail.txt").write_text("The mail relay rejects messages larger than 20 MB.")
    loaded = run_cli(home, "load", "directory", "--name", "ops", "--input-dir", str(tmp_path), "--extensions", ".txt")
    assert loaded.returncode == 0, loaded.stderr
    assert len(snapshot_files(home)) == 1  # the load left the snapshot of the revision it made
    first = search_in_a_new_process(home, "VPN firmware", k=2)
    assert "PYMILVUS False" in first.stdout, first.stdout + first.stderr
    assert "vpn.txt" in first.stdout
    with Container(make_settings(home), embedder=embedder) as c:
        from_snapshot = hits(c, query="VPN firmware")
        assert c.passages._connection is None
    for path in snapshot_files(home):
        path.unlink()
    with Container(make_settings(home), embedder=embedder) as c:  # the snapshot held what Milvus holds
        assert hits(c, query="VPN firmware") == from_snapshot
        assert c.passages._connection is not None
