"""Keeping the settings' secrets out of text shown to people (error messages of drivers, URLs)."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from connectors.weather.openweather import redact
from streams.settings import Settings

MASK = "***"


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value the settings hold: whole secret URLs, their passwords, tokens, keys."""
    found: list[str] = []
    for value in (
        settings.redis_url,
        settings.database_url,
        settings.openweather_api_key,
        settings.alert_webhook_url,
        getattr(settings, "api_token", None),
    ):
        if not isinstance(value, SecretStr):
            continue
        raw = value.get_secret_value()
        if not raw:
            continue
        found.append(raw)
        try:
            password = urlsplit(raw).password
        except ValueError:
            password = None
        if password:
            found += [password, unquote(password)]
    # Longest first, so a URL is masked whole before its password is looked for in it.
    return sorted({s for s in found if len(s) >= 3}, key=len, reverse=True)


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every secret and every ``appid=`` query value replaced by ``***``.

    >>> scrub("auth failed for redis://:hunter2@h:1/0", ["hunter2"])
    'auth failed for redis://:***@h:1/0'
    """
    for secret in secrets:
        text = text.replace(secret, MASK)
    return redact(text, "")
