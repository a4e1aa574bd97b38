"""Settings: defaults, TOML file, environment precedence and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from enclave.settings import Settings, SettingsError


def test_defaults_put_sqlite_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path}/db/enclave.sqlite3"
    assert settings.sqlite_path == tmp_path / "db" / "enclave.sqlite3"
    assert settings.hub_url is None


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    config = tmp_path / "enclave.toml"
    config.write_text(
        'data_dir = "/srv/enclave"\nsecret_key = "from-file"\ntoken_lifetime_days = 7\n'
    )
    env = {"ENCLAVE_CONFIG": str(config), "ENCLAVE_SECRET_KEY": "from-env", "OTHER": "x"}
    settings = Settings.load(env)
    assert settings.data_dir == Path("/srv/enclave")
    assert settings.secret_key == "from-env"
    assert settings.token_lifetime_days == 7
    assert settings.database_url.startswith("sqlite:////srv/enclave/db/")
    assert "from-env" not in repr(settings)


def test_postgres_url_from_the_environment() -> None:
    settings = Settings.load({"ENCLAVE_DATABASE_URL": "postgresql://u@h/db"})
    assert settings.database_url == "postgresql://u@h/db"
    assert settings.sqlite_path is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("bogus = 1\n", "unknown setting"),
        ("data_dir = [\n", "cannot read settings file"),
        ("token_lifetime_days = 'x'\n", "must be an integer"),
        ("hub_url = 'http://hub'\n", "hub_api_token is missing"),
        ("secret_key = 5\n", "must be a string"),
    ],
)
def test_bad_files_are_refused_with_the_setting_named(
    tmp_path: Path, content: str, message: str
) -> None:
    config = tmp_path / "enclave.toml"
    config.write_text(content)
    with pytest.raises(SettingsError, match=message):
        Settings.load({}, config_file=config)


def test_secret_key_is_required_when_asked_for() -> None:
    with pytest.raises(SettingsError, match="ENCLAVE_SECRET_KEY"):
        Settings().require_secret_key()
    assert Settings(secret_key="k" * 32).require_secret_key() == "k" * 32
