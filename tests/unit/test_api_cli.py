"""``delaycast api``'s command line and settings, without starting the server."""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner

from streams.operate.cli.main import cli
from streams.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ("API_HOST", "API_PORT", "API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DELAYCAST_HOME", str(tmp_path))


def test_help_shows_examples_and_the_defaults():
    result = CliRunner().invoke(cli, ["api", "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "delaycast api --port 8080" in result.output
    assert "API_HOST, 127.0.0.1" in result.output and "API_PORT, 8000" in result.output


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_a_port_outside_1_to_65535_is_a_usage_error(port):
    result = CliRunner().invoke(cli, ["api", "--port", port])
    assert result.exit_code == 2 and "--port" in result.output
    assert "Traceback" not in result.output


def test_a_port_in_use_is_a_usage_error_naming_it():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["api", "--port", str(port)])
    assert result.exit_code == 2
    assert f"listening on 127.0.0.1:{port} is in use" in result.output


def test_api_settings_have_defaults_and_the_token_is_secret(monkeypatch):
    settings = load_settings()
    assert (settings.api_host, settings.api_port, settings.api_token) == ("127.0.0.1", 8000, None)
    monkeypatch.setenv("API_TOKEN", "hunter2-token-" + "0" * 20)
    monkeypatch.setenv("API_PORT", "8080")
    settings = load_settings()
    assert settings.api_port == 8080
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == "hunter2-token-" + "0" * 20
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())


def test_an_api_port_out_of_range_stops_with_a_message_naming_it(monkeypatch):
    monkeypatch.setenv("API_PORT", "70000")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "API_PORT" in str(info.value)


def test_a_short_api_token_is_refused_without_repeating_it_and_an_empty_one_is_none(monkeypatch):
    monkeypatch.setenv("API_TOKEN", "hunter2-short")
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert "API_TOKEN must be at least 32 characters, not 13" in message
    assert "hunter2" not in message and "secrets.token_urlsafe(32)" in message
    monkeypatch.setenv("API_TOKEN", "")
    assert load_settings().api_token is None


def test_allowed_hosts_are_read_as_the_host_header_is_and_settings_errors_hide_secrets():
    from pydantic import ValidationError

    from streams.settings import Settings

    hosts = load_settings(api_allowed_hosts="LocalHost:8000, [::1] ,*", api_host="10.0.0.7")
    assert hosts.allowed_hosts == ("localhost", "::1", "*", "10.0.0.7")
    with pytest.raises(ValidationError) as info:
        Settings(api_token="hunter2-short")
    assert "hunter2" not in str(info.value)
