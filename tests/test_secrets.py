"""Secrets are never printed: credentials in URIs are masked, an endpoint's error body loses anything shaped
like a key, MEMBOT_HOME is owner-only, and a whole run's output and files hold none of the secrets."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from agent.errors import StoreUnavailable
from agent.redact import ScrubbingFilter, mask_uri, scrub, uri_secret
from tests.conftest import free_port, llm_env, make_settings, run_cli
from tests.fakes.openai_server import error

OPENAI_KEY = "sk-proj-Zq8TESTsecretKEY4d9Xw2"
MILVUS_PASSWORD = "Milvus-Pw-7781"
PG_PASSWORD = "Pg-Pw-44190"
SLACK_TOKEN = "xoxb-1111-2222-SlackSecretToken"


@pytest.mark.parametrize(("text", "secret"), [
    ("Cannot reach http://root:hunter2@milvus:19530 now", "hunter2"),
    ("postgresql+psycopg://bob:p@ss:w0rd@db:5432/membot", "p@ss:w0rd"),
    ("https://ghp_0123456789abcdefghijABCDEF@github.com/x.git", "ghp_0123456789abcdefghijABCDEF"),
    ("Incorrect API key provided: sk-live-abcdef0123456789.", "sk-live-abcdef0123456789"),
    ('{"error": {"message": "bad", "api_key": "zz-9a8b7c6d5e"}}', "zz-9a8b7c6d5e"),
    ("Authorization: Bearer abc.def-123456789", "abc.def-123456789"),
    ("token xoxb-123-456-abcdefABCDEF rejected", "xoxb-123-456-abcdefABCDEF"),
    ("GET /v1/models?api_key=plainvalue99&x=1", "plainvalue99"),
    ("key Q9kLm2Xp8Rt5Vw3Yz7Ab4Cd6Ef1Gh0Ij2Kl leaked", "Q9kLm2Xp8Rt5Vw3Yz7Ab4Cd6Ef1Gh0Ij2Kl"),
])
def test_scrub_removes_key_shaped_text(text: str, secret: str) -> None:
    cleaned = scrub(text)
    assert secret not in cleaned and "****" in cleaned


@pytest.mark.parametrize("text", [
    "Loaded 12 passages from report_2024_final_version_of_the_file.pdf",
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "The author: Ada. Monkey: banana. https://files.slack.com/files-pri/T1-F2/a.pdf",
])
def test_scrub_leaves_ordinary_text(text: str) -> None:
    assert scrub(text) == text


def test_mask_uri_keeps_the_user_and_host() -> None:
    assert mask_uri("http://root:Milvus@10.0.0.5:19530") == "http://root:****@10.0.0.5:19530"
    assert uri_secret("postgresql://u:pw%40x@h/db") == "pw%40x"
    assert mask_uri("/home/me/.membot/milvus.db") == "/home/me/.membot/milvus.db"


def test_known_secrets_are_masked_in_log_records() -> None:
    record = logging.LogRecord("membot", logging.ERROR, __file__, 1, "token %s failed", ("plain-secret",), None)
    ScrubbingFilter(["plain-secret"]).filter(record)
    assert record.getMessage() == "token **** failed"


def test_a_milvus_password_is_not_in_the_connection_error() -> None:
    from agent.archival.milvus_store import PassageStore

    with pytest.raises(StoreUnavailable) as caught:
        PassageStore(f"http://root:{MILVUS_PASSWORD}@127.0.0.1:{free_port()}")
    assert MILVUS_PASSWORD not in str(caught.value)
    assert "http://root:****@127.0.0.1" in str(caught.value)


def test_a_database_password_is_not_in_the_connection_error() -> None:
    from agent.db.engine import open_engine

    with pytest.raises(StoreUnavailable) as caught:
        open_engine(f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1:{free_port()}/nothing")
    assert PG_PASSWORD not in str(caught.value)


def test_an_endpoint_echoing_the_key_is_not_relayed(fake) -> None:
    from agent.llm import LLMUnavailable, OpenAIChat

    fake.script(error(401, f"Incorrect API key provided: {OPENAI_KEY}. Find your key at platform."))
    chat = OpenAIChat("fake-model", OPENAI_KEY, fake.base_url, timeout=5, max_retries=0)
    with pytest.raises(LLMUnavailable) as caught:
        chat.complete([{"role": "user", "content": "hi"}])
    assert OPENAI_KEY not in str(caught.value)
    assert "HTTP 401" in str(caught.value) and "Incorrect API key provided" in str(caught.value)


def test_settings_describe_masks_uri_passwords(home: Path) -> None:
    settings = make_settings(home, MEMBOT_MILVUS_URI=f"http://root:{MILVUS_PASSWORD}@127.0.0.1:19530",
                             MEMBOT_DATABASE_URL=f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1/x")
    shown = str(settings.describe())
    assert MILVUS_PASSWORD not in shown and PG_PASSWORD not in shown


def _modes(home: Path) -> dict[str, int]:
    return {str(p.relative_to(home)): stat.S_IMODE(p.stat().st_mode) for p in [home, *home.rglob("*")]
            if not p.is_symlink()}


def test_home_is_owner_only(tmp_path: Path) -> None:
    home = tmp_path / "fresh-home"
    doc = tmp_path / "note.txt"
    doc.write_text("The owner-only home keeps the quarterly ledger code PRIVATE-LEDGER-9.")
    result = run_cli(home, "load", "directory", "--name", "notes", "--input-files", str(doc))
    assert result.returncode == 0, result.stderr
    modes = _modes(home)
    assert modes["."] == 0o700
    assert any(name.startswith("membot.db") for name in modes)
    for name, mode in modes.items():
        assert mode & 0o077 == 0, f"{name} is {oct(mode)}"


def test_an_older_open_home_is_tightened(home: Path) -> None:
    from bot.container import Container

    home.chmod(0o755)
    (home / "membot.log").write_text("old log")
    (home / "membot.log").chmod(0o644)
    with Container(make_settings(home)) as c:
        _ = c.engine
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "membot.log").stat().st_mode) == 0o600


def _everything(home: Path, outputs: list[str]) -> str:
    texts = list(outputs)
    for path in home.rglob("*"):
        if path.is_file() and not path.is_symlink():
            texts.append(path.read_bytes().decode("latin-1"))
    return "\n".join(texts)


def test_no_secret_in_any_output_or_file_of_a_run(tmp_path: Path, fake, pg_url: str) -> None:
    """A run with every secret set (in the environment, where they do not land in config.toml), with commands
    that fail on purpose: no output and no file holds any of them."""
    home = tmp_path / "run-home"
    doc = tmp_path / "guide.txt"
    doc.write_text("The secrets run indexes the harbour code TIDEWATER-5.")
    pg = pg_url.replace("postgres@", f"postgres:{PG_PASSWORD}@", 1)  # trust auth accepts any password
    assert PG_PASSWORD in pg
    env = {**llm_env(fake), "OPENAI_API_KEY": OPENAI_KEY, "SLACK_BOT_TOKEN": SLACK_TOKEN,
           "MEMBOT_DATABASE_URL": pg}
    fake.script(error(401, f"Incorrect API key provided: {OPENAI_KEY}."))
    runs = [
        run_cli(home, "load", "directory", "--name", "guide", "--input-files", str(doc), env=env),
        run_cli(home, "run", "--agent", "secrets", "--first", env=env, input="hello\n"),
        run_cli(home, "search", "guide", "harbour", env={
            **env, "MEMBOT_MILVUS_URI": f"http://root:{MILVUS_PASSWORD}@127.0.0.1:{free_port()}"}),
        run_cli(home, "sources", "list", env={
            **env, "MEMBOT_DATABASE_URL": f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1:{free_port()}/x"}),
    ]
    assert runs[0].returncode == 0, runs[0].stderr
    assert "HTTP 401" in runs[1].stdout + runs[1].stderr
    assert runs[2].returncode != 0 and "****" in runs[2].stderr
    assert runs[3].returncode != 0 and "Cannot open the database" in runs[3].stderr
    seen = _everything(home, [r.stdout + r.stderr for r in runs])
    for secret in (OPENAI_KEY, MILVUS_PASSWORD, PG_PASSWORD, SLACK_TOKEN):
        assert secret not in seen
