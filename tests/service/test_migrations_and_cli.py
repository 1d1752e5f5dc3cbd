"""Migrations upgrade and downgrade cleanly and match the models; the CLI commands; settings; the web UI shell."""

from __future__ import annotations

import os
import stat

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from typer.testing import CliRunner

from medai.cli.main import app as cli
from medai.service import migrate
from medai.service.models import Base
from medai.service.settings import ServiceSettings
from tests.service.conftest import PASSWORD

TABLES = {"users", "api_tokens", "login_failures", "registered_models", "model_versions", "audit_entries",
          "audit_anchor"}


POSTGRES = os.environ.get("MEDAI_TEST_POSTGRES_URL")  # e.g. postgresql+psycopg://medai@127.0.0.1:54329/medai_test
DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not POSTGRES, reason="set MEDAI_TEST_POSTGRES_URL to an empty PostgreSQL database to test it too"))]


def database_url(kind: str, tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'm.db'}" if kind == "sqlite" else POSTGRES


@pytest.mark.parametrize("kind", DATABASES)
def test_migrations_upgrade_downgrade_and_upgrade_again(tmp_path, kind):
    url = database_url(kind, tmp_path)
    migrate.upgrade(url)
    assert migrate.current(url) == migrate.head()
    engine = create_engine(url)
    assert TABLES <= set(inspect(engine).get_table_names())
    migrate.downgrade(url, "base")
    assert migrate.current(url) is None
    assert not TABLES & set(inspect(engine).get_table_names())
    migrate.upgrade(url)
    assert TABLES <= set(inspect(engine).get_table_names())
    engine.dispose()
    migrate.downgrade(url, "base")


@pytest.mark.parametrize("kind", DATABASES)
def test_migrations_match_the_models(tmp_path, kind):
    url = database_url(kind, tmp_path)
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    migrate.downgrade(url, "base")
    assert differences == []


def test_secret_key_is_created_once_with_owner_only_permissions(tmp_path):
    settings = ServiceSettings(home=tmp_path / "home", secret_key=None)
    settings.prepare()
    first = settings.signing_key()
    assert first == ServiceSettings(home=tmp_path / "home", secret_key=None).signing_key() and len(first) > 40
    assert stat.S_IMODE(os.stat(tmp_path / "home" / "secret_key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "home").st_mode) == 0o700


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDAI_HOME", str(tmp_path))
    monkeypatch.setenv("MEDAI_ACCESS_TOKEN_MINUTES", "5")
    monkeypatch.setenv("MEDAI_REGISTER_ROOTS", f'["{tmp_path}/in"]')
    settings = ServiceSettings()
    assert settings.home == tmp_path and settings.access_token_minutes == 5
    assert settings.database_url_resolved == f"sqlite:///{tmp_path / 'medai.db'}"
    assert settings.register_roots_resolved == [(tmp_path / "in").resolve()]


def test_create_admin_command(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDAI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDAI_ARGON2_MEMORY_KIB", "1024")
    runner = CliRunner()
    result = runner.invoke(cli, ["users", "create-admin", "--username", "Boss", "--password-stdin"],
                           input=f"{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "created administrator boss" in result.output
    again = runner.invoke(cli, ["users", "create-admin", "--username", "boss", "--password-stdin"],
                          input=f"{PASSWORD}\n")
    assert again.exit_code == 2 and "taken" in again.output
    weak = runner.invoke(cli, ["users", "create-admin", "--username", "other", "--password-stdin"], input="short\n")
    assert weak.exit_code == 2 and "at least 10 characters" in weak.output and "Traceback" not in weak.output


def test_bad_setting_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDAI_HOME", str(tmp_path))
    monkeypatch.setenv("MEDAI_ACCESS_TOKEN_MINUTES", "never")
    result = CliRunner().invoke(cli, ["users", "create-admin", "--username", "x", "--password-stdin"], input="p\n")
    assert result.exit_code == 2 and "MEDAI_ACCESS_TOKEN_MINUTES" in result.output


def test_serve_command_is_listed():
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0 and "--port" in result.output


def test_web_ui_is_local_only_and_sends_security_headers(fresh):
    page = fresh.client.get("/ui/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "http://" not in page.text and "https://" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    script = fresh.client.get("/static/app.js").text
    assert "innerHTML" not in script and "https://" not in script
    assert fresh.client.get("/").status_code == 200  # redirected to /ui/
    assert fresh.client.get("/api/users/me", headers=fresh.auth("cleo")).headers["cache-control"] == "no-store"
