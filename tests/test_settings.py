"""Settings (environment over ~/.membot/config.toml over defaults) and `membot configure`, in-process."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from agent.errors import ConfigError
from bot.configure import ask, run_configure
from bot.settings import load_settings, reveal, write_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SECRET = "sk-test-5f1c9a7e2b4d8c0e"


def env_for(home: Path, **extra: str) -> dict[str, str]:
    return {"MEMBOT_HOME": str(home), "HOME": str(home), **extra}


def write_toml(home: Path, text: str) -> Path:
    path = home / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# reading -------------------------------------------------------------------------------------------------
def test_defaults_live_under_home(home: Path) -> None:
    s = load_settings(env_for(home))
    assert s.home == home
    assert s.database_url == f"sqlite:///{home / 'membot.db'}"
    assert s.milvus_uri == str(home / "milvus.db")
    assert (s.embedding_provider, s.embedding_model) == ("local", "all-MiniLM-L6-v2-onnx-int8")
    assert s.openai_api_key is None


def test_home_defaults_to_dot_membot_in_the_users_home(tmp_path: Path) -> None:
    s = load_settings({"HOME": str(tmp_path)})
    assert s.home == tmp_path / ".membot"
    assert s.config_path == tmp_path / ".membot" / "config.toml"


def test_environment_overrides_config_file(home: Path) -> None:
    write_toml(home, 'llm_model = "from-file"\ncontext_window = 4096\nchunk_tokens = 200\nmax_file_mb = 2.5\n')
    from_file = load_settings(env_for(home))
    assert (from_file.llm_model, from_file.context_window, from_file.chunk_tokens, from_file.max_file_mb) == (
        "from-file", 4096, 200, 2.5)

    s = load_settings(env_for(home, MEMBOT_LLM_MODEL="from-env", MEMBOT_CONTEXT_WINDOW="16384"))
    assert s.llm_model == "from-env"
    assert s.context_window == 16384 and isinstance(s.context_window, int)
    assert s.chunk_tokens == 200  # not overridden: the file's value stays
    assert s.max_file_mb == 2.5


def test_empty_environment_variable_does_not_override(home: Path) -> None:
    write_toml(home, "context_window = 4096\n")
    assert load_settings(env_for(home, MEMBOT_CONTEXT_WINDOW="")).context_window == 4096


def test_openai_provider_gets_an_openai_embedding_model(home: Path) -> None:
    s = load_settings(env_for(home, MEMBOT_EMBEDDING_PROVIDER="openai"))
    assert s.embedding_model == "text-embedding-3-small"
    s = load_settings(env_for(home, MEMBOT_EMBEDDING_PROVIDER="openai", MEMBOT_EMBEDDING_MODEL="my-embedder"))
    assert s.embedding_model == "my-embedder"


@pytest.mark.parametrize(("var", "value", "expected"), [
    ("MEMBOT_CONTEXT_WINDOW", "lots", "MEMBOT_CONTEXT_WINDOW must be a whole number, got 'lots'"),
    ("MEMBOT_CONTEXT_WINDOW", "8192.5", "MEMBOT_CONTEXT_WINDOW must be a whole number"),
    ("MEMBOT_CHUNK_TOKENS", "3OO", "MEMBOT_CHUNK_TOKENS must be a whole number"),
    ("MEMBOT_MAX_FILE_MB", "ten", "MEMBOT_MAX_FILE_MB must be a number, got 'ten'"),
    ("MEMBOT_MAX_FILE_MB", "0", "MEMBOT_MAX_FILE_MB and MEMBOT_EMBEDDING_BATCH_SIZE must be positive"),
    ("MEMBOT_MAX_FILE_MB", "nan", "MEMBOT_MAX_FILE_MB must be a finite number"),
    ("MEMBOT_EMBEDDING_PROVIDER", "cohere", "MEMBOT_EMBEDDING_PROVIDER must be one of local, openai, got 'cohere'"),
    ("MEMBOT_CHUNK_OVERLAP", "300", "MEMBOT_CHUNK_OVERLAP must be smaller than MEMBOT_CHUNK_TOKENS"),
])
def test_bad_environment_values_are_config_errors(home: Path, var: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env_for(home, **{var: value}))
    assert expected in str(err.value)


def test_invalid_toml_is_a_config_error_naming_the_file(home: Path) -> None:
    path = write_toml(home, 'llm_model = "unterminated\n')
    with pytest.raises(ConfigError) as err:
        load_settings(env_for(home))
    assert str(path) in str(err.value) and "not valid TOML" in str(err.value)


def test_non_utf8_config_file_is_a_config_error(home: Path) -> None:
    (home / "config.toml").write_bytes(b'llm_model = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(env_for(home))


def test_unknown_key_is_a_config_error_naming_it(home: Path) -> None:
    write_toml(home, 'llm_model = "x"\nembeding_model = "typo"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(env_for(home))
    assert "unknown setting(s) embeding_model" in str(err.value)
    assert "embedding_model" in str(err.value)  # the known names are listed


@pytest.mark.parametrize(("line", "expected"), [
    ("context_window = [8192]", "MEMBOT_CONTEXT_WINDOW must be a whole number"),
    ("context_window = true", "MEMBOT_CONTEXT_WINDOW must be a whole number"),
    ("context_window = 8192.9", "MEMBOT_CONTEXT_WINDOW must be a whole number"),
    ('context_window = "big"', "MEMBOT_CONTEXT_WINDOW must be a whole number, got 'big'"),
    ("max_file_mb = {a = 1}", "MEMBOT_MAX_FILE_MB must be a number"),
    ("llm_model = [5]", "MEMBOT_LLM_MODEL must be text, got [5]"),
    ("database_url = true", "MEMBOT_DATABASE_URL must be text"),
    ("openai_base_url = 1.5", "OPENAI_BASE_URL must be text"),
])
def test_wrongly_typed_config_values_are_config_errors(home: Path, line: str, expected: str) -> None:
    write_toml(home, line + "\n")
    with pytest.raises(ConfigError) as err:
        load_settings(env_for(home))
    assert expected in str(err.value)


def test_numbers_given_as_text_and_whole_numbers_as_text_are_accepted(home: Path) -> None:
    write_toml(home, 'context_window = "4096"\nmax_file_mb = 3\nllm_model = 7\n')
    s = load_settings(env_for(home))
    assert s.context_window == 4096 and s.max_file_mb == 3.0 and s.llm_model == "7"


def test_unreadable_config_path_is_a_config_error(home: Path) -> None:
    (home / "config.toml").mkdir()  # a directory where the file should be: reading it fails for root too
    with pytest.raises(ConfigError, match="Cannot read"):
        load_settings(env_for(home))


def test_secrets_are_masked_when_shown(home: Path) -> None:
    s = load_settings(env_for(home, OPENAI_API_KEY=SECRET))
    assert reveal(s.openai_api_key) == SECRET  # a SecretStr: only reveal() shows it
    assert SECRET not in repr(s)
    shown = s.describe()
    assert SECRET not in str(shown)
    assert shown["openai_api_key"] == "****" + SECRET[-4:]


# writing -------------------------------------------------------------------------------------------------
def test_write_config_round_trips_and_is_owner_only(home: Path) -> None:
    s = load_settings(env_for(home))
    path = write_config(s, {"openai_api_key": SECRET, "llm_model": "gpt-x", "context_window": 32768,
                            "max_file_mb": 1.5, "openai_base_url": None})
    assert path == home / "config.toml"
    assert mode_of(path) == 0o600
    data = tomllib.loads(path.read_text())
    assert data == {"openai_api_key": SECRET, "llm_model": "gpt-x", "context_window": 32768, "max_file_mb": 1.5}
    again = load_settings(env_for(home))
    assert (reveal(again.openai_api_key), again.llm_model, again.context_window) == (SECRET, "gpt-x", 32768)
    assert not [p.name for p in home.iterdir() if p.name != "config.toml"]  # no temporary file left behind


def test_write_config_merges_with_what_is_there(home: Path) -> None:
    write_toml(home, 'llm_model = "kept"\ncontext_window = 4096\n')
    s = load_settings(env_for(home))
    write_config(s, {"context_window": 16384, "llm_model": None})
    data = tomllib.loads((home / "config.toml").read_text())
    assert data == {"llm_model": "kept", "context_window": 16384}


def test_write_config_tightens_an_existing_world_readable_file(home: Path) -> None:
    path = write_toml(home, 'llm_model = "x"\n')
    path.chmod(0o644)
    write_config(load_settings(env_for(home)), {"openai_api_key": SECRET})
    assert mode_of(path) == 0o600
    assert tomllib.loads(path.read_text())["openai_api_key"] == SECRET


def test_write_config_rejects_bad_values_and_leaves_the_file_alone(home: Path) -> None:
    path = write_toml(home, 'llm_model = "kept"\n')
    before = path.read_text()
    s = load_settings(env_for(home))
    with pytest.raises(ConfigError, match="MEMBOT_EMBEDDING_PROVIDER must be one of"):
        write_config(s, {"embedding_provider": "cohere"})
    with pytest.raises(ConfigError, match="MEMBOT_CHUNK_OVERLAP must be smaller"):
        write_config(s, {"chunk_overlap": 500})
    assert path.read_text() == before


@pytest.mark.parametrize("value", ['quote " and back\\slash', "tab\tand newline\nand bell\x07 del\x7f",
                                   "emoji 😀 and accents é"])
def test_write_config_escapes_strings_into_valid_toml(home: Path, value: str) -> None:
    write_config(load_settings(env_for(home)), {"llm_model": value})
    assert load_settings(env_for(home)).llm_model == value


# configure: flags ---------------------------------------------------------------------------------------
def test_configure_flags_write_the_key_without_printing_it(home: Path) -> None:
    from bot.cli import cli

    result = CliRunner().invoke(cli, ["configure", "-y", "--openai-api-key", SECRET, "--llm-model", "gpt-x",
                                      "--context-window", "16384", "--embedding-provider", "local"],
                                env=env_for(home))
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    assert f"Saved settings to {home / 'config.toml'}" in result.output
    assert mode_of(home / "config.toml") == 0o600
    s = load_settings(env_for(home))
    assert (reveal(s.openai_api_key), s.llm_model, s.context_window) == (SECRET, "gpt-x", 16384)


def test_configure_flags_store_platform_tokens_without_printing_them(home: Path) -> None:
    from bot.cli import cli

    tokens = ["--slack-bot-token", "xoxb-" + SECRET, "--slack-app-token", "xapp-" + SECRET,
              "--discord-token", "dt-" + SECRET, "--discord-guild-id", "123456789"]
    result = CliRunner().invoke(cli, ["configure", "-y", *tokens], env=env_for(home))
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    s = load_settings(env_for(home))
    assert (reveal(s.slack_bot_token), reveal(s.slack_app_token), reveal(s.discord_token), s.discord_guild_id) == (
        "xoxb-" + SECRET, "xapp-" + SECRET, "dt-" + SECRET, "123456789")
    assert SECRET not in repr(s) and SECRET not in str(s.describe())
    bad = CliRunner().invoke(cli, ["configure", "-y", "--discord-guild-id", "general"], env=env_for(home))
    assert bad.exit_code == 1 and "DISCORD_GUILD_ID must be a server id" in str(bad.exception)


def test_configure_without_a_terminal_never_prompts(home: Path) -> None:
    from bot.cli import cli

    result = CliRunner().invoke(cli, ["configure"], env=env_for(home), input="")
    assert result.exit_code == 0, result.output
    assert "Select storage backend" not in result.output
    assert (home / "config.toml").exists()


def test_configure_rejects_an_unknown_provider_flag(home: Path) -> None:
    from bot.cli import cli

    result = CliRunner().invoke(cli, ["configure", "-y", "--embedding-provider", "cohere"], env=env_for(home))
    assert result.exit_code == 2
    assert "'cohere' is not one of" in result.output
    assert not (home / "config.toml").exists()


# configure: interactive ---------------------------------------------------------------------------------
def run_interactive(home: Path, answers: list[str]) -> click.testing.Result:
    settings = load_settings(env_for(home))

    @click.command()
    def configure_in_terminal() -> None:
        run_configure(settings, {}, interactive=True)

    return CliRunner().invoke(configure_in_terminal, [], input="\n".join(answers) + "\n")


def test_interactive_configure_asks_for_each_setting(home: Path, tmp_path: Path) -> None:
    uri = str(tmp_path / "elsewhere" / "milvus.db")
    answers = ["milvus", uri, "", "local", "", "http://127.0.0.1:11434/v1", SECRET, "llama3.1", "16384"]
    result = run_interactive(home, answers)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Select storage backend for archival data" in out
    assert f"Enter the Milvus connection URI (Default: {home / 'milvus.db'})" in out
    assert "Select embedding provider" in out and "Context window (tokens)" in out
    assert SECRET not in out  # typed into a hidden prompt, never echoed
    path = home / "config.toml"
    assert mode_of(path) == 0o600
    s = load_settings(env_for(home))
    assert s.milvus_uri == uri
    assert s.database_url == f"sqlite:///{home / 'membot.db'}"
    assert (reveal(s.openai_api_key), s.openai_base_url, s.llm_model, s.context_window) == (
        SECRET, "http://127.0.0.1:11434/v1", "llama3.1", 16384)


def test_interactive_defaults_keep_the_current_settings(home: Path) -> None:
    write_toml(home, f'openai_api_key = "{SECRET}"\nllm_model = "kept-model"\ncontext_window = 4096\n')
    result = run_interactive(home, [""] * 9)
    assert result.exit_code == 0, result.output
    s = load_settings(env_for(home))
    assert (reveal(s.openai_api_key), s.llm_model, s.context_window) == (SECRET, "kept-model", 4096)
    assert s.milvus_uri == str(home / "milvus.db")
    assert SECRET not in result.output


def test_interactive_switch_to_openai_proposes_an_openai_embedding_model(home: Path) -> None:
    result = run_interactive(home, ["", "", "", "openai", "", "", SECRET, "", ""])
    assert result.exit_code == 0, result.output
    assert "Embedding model [text-embedding-3-small]" in result.output
    s = load_settings(env_for(home))
    assert (s.embedding_provider, s.embedding_model) == ("openai", "text-embedding-3-small")


def test_interactive_prompts_again_on_invalid_answers(home: Path) -> None:
    result = run_interactive(home, ["sqlite", "milvus", "", "", "cohere", "local", "", "", "", "", "lots", "9000"])
    assert result.exit_code == 0, result.output
    assert result.output.count("Select storage backend for archival data") == 2
    assert result.output.count("Select embedding provider") == 2
    assert "'lots' is not a valid integer" in result.output
    assert load_settings(env_for(home)).context_window == 9000


def test_ask_alone_returns_the_answers(home: Path) -> None:
    settings = load_settings(env_for(home))
    captured: dict[str, object] = {}

    @click.command()
    def just_ask() -> None:
        captured.update(ask(settings))

    result = CliRunner().invoke(just_ask, [], input="\n" * 9)
    assert result.exit_code == 0, result.output
    assert captured["milvus_uri"] == str(home / "milvus.db")
    assert captured["embedding_provider"] == "local" and captured["embedding_model"] == "all-MiniLM-L6-v2-onnx-int8"
    assert captured["openai_api_key"] is None and captured["openai_base_url"] is None
    assert captured["context_window"] == 8192
    assert not (home / "config.toml").exists()  # asking alone writes nothing
    assert os.listdir(home) == []


# the settings model --------------------------------------------------------------------------------------
def test_every_setting_keeps_its_variable_name() -> None:
    from bot.settings import ENV_NAMES

    expected = {"openai_api_key": "OPENAI_API_KEY", "openai_base_url": "OPENAI_BASE_URL",
                "slack_bot_token": "SLACK_BOT_TOKEN", "slack_app_token": "SLACK_APP_TOKEN",
                "slack_signing_secret": "SLACK_SIGNING_SECRET", "discord_token": "DISCORD_TOKEN",
                "discord_guild_id": "DISCORD_GUILD_ID"}
    for name, var in ENV_NAMES.items():
        assert var == expected.get(name, f"MEMBOT_{name.upper()}")
    assert {"home", "database_url", "llm_model", "schedule_poll_seconds", "slack_api_url"} <= set(ENV_NAMES)


def test_a_secret_of_the_wrong_type_is_named_but_never_repeated(home: Path) -> None:
    write_toml(home, f'slack_bot_token = ["{SECRET}"]\n')
    with pytest.raises(ConfigError) as err:
        load_settings(env_for(home))
    assert "SLACK_BOT_TOKEN must be text" in str(err.value) and SECRET not in str(err.value)


def test_secrets_from_the_environment_are_secret_values(home: Path) -> None:
    from pydantic import SecretStr

    s = load_settings(env_for(home, SLACK_APP_TOKEN="xapp-" + SECRET))
    assert isinstance(s.slack_app_token, SecretStr) and SECRET not in str(s.slack_app_token)
    assert reveal(s.slack_app_token) == "xapp-" + SECRET and reveal(s.discord_token) is None
