"""The bearer tokens of the API (``Authorization: Bearer <token>``).

- ``API_TOKEN`` guards the changes. Without it in the settings, changes are refused with 503
  (disabled), never allowed.
- ``API_READ_TOKEN``, when set, guards every read but ``/api/health`` (a liveness probe that
  shows statuses only) and the dashboard's page (which holds no data until its reads answer):
  the metrics, A/B, alerts, flags and ``/metrics``. ``API_TOKEN`` reads too.

Tokens are compared in constant time and never echoed, logged or put in an answer.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from streams.operate.api.resources import Resources, get_resources

DISABLED = "flag changes through the API are disabled: set API_TOKEN"
UNAUTHORIZED = "a valid 'Authorization: Bearer <API_TOKEN>' header is required"
UNAUTHORIZED_READ = (
    "this API's reads need 'Authorization: Bearer <API_READ_TOKEN>' (or API_TOKEN); "
    "the dashboard takes it in its token field"
)

_bearer = HTTPBearer(auto_error=False, description="The API_TOKEN setting.")


def token_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def require_token(
    resources: Annotated[Resources, Depends(get_resources)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """FastAPI dependency: 503 when no token is configured, 401 without the right one."""
    token = resources.settings.api_token
    if token is None:
        raise HTTPException(status_code=503, detail=DISABLED)
    if credentials is None or not token_matches(credentials.credentials, token.get_secret_value()):
        raise HTTPException(
            status_code=401, detail=UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"}
        )


def require_read_token(
    resources: Annotated[Resources, Depends(get_resources)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """FastAPI dependency: open when no API_READ_TOKEN is configured; else 401 unless the
    request carries it, or API_TOKEN."""
    settings = resources.settings
    if settings.api_read_token is None:
        return
    given = None if credentials is None else credentials.credentials
    accepted = [settings.api_read_token, settings.api_token]
    if given is None or not any(
        token is not None and token_matches(given, token.get_secret_value()) for token in accepted
    ):
        raise HTTPException(
            status_code=401, detail=UNAUTHORIZED_READ, headers={"WWW-Authenticate": "Bearer"}
        )
