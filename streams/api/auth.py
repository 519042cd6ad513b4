"""The bearer token that guards the API's changes (``Authorization: Bearer <API_TOKEN>``).

Without API_TOKEN in the settings, changes are refused with 503 (disabled), never allowed. The
token is compared in constant time and never echoed, logged or put in an answer.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from streams.api.resources import Resources, get_resources

DISABLED = "flag changes through the API are disabled: set API_TOKEN"
UNAUTHORIZED = "a valid 'Authorization: Bearer <API_TOKEN>' header is required"

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
