"""Checks in front of every request, before any endpoint runs, answered in the API's error
format (``{"detail": "..."}``).

- **Trusted hosts.** A request whose ``Host`` header (port aside; ``[v6]:port`` understood) is
  not among ``API_ALLOWED_HOSTS`` gets 400: a page on another site cannot reach the API through
  a DNS name rebound to this machine's loopback address. Starlette's own host middleware cuts
  the port at the first colon, which turns ``[::1]:8000`` into ``[``.
- **A body over ``API_MAX_BODY_BYTES``** gets 413: at once when its ``Content-Length`` says
  so, and a streamed body as soon as it passes the cap, before the endpoint has it whole.
  (FastAPI's app-level ``max_body_size`` answers a declared length in plain text, outside the
  API's error format.)

The ``Host`` header is parsed by :func:`streams.settings.host_name`, as the settings parse
``API_ALLOWED_HOSTS``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

from streams.settings import host_name

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestGuards:
    """ASGI middleware: 400 for a request to a host not in ``allowed_hosts`` ('*': any), 413
    for a body longer than ``max_body_bytes``."""

    def __init__(self, app: App, *, allowed_hosts: tuple[str, ...], max_body_bytes: int) -> None:
        self.app = app
        self.any_host = "*" in allowed_hosts
        self.allowed_hosts = frozenset(allowed_hosts)
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if not self.any_host and host_name(headers.get(b"host", b"")) not in self.allowed_hosts:
            await _answer(
                send,
                400,
                "this API answers to the hosts in API_ALLOWED_HOSTS only; the request's Host "
                "header names another",
            )
            return
        declared = headers.get(b"content-length", b"").strip()
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await _answer(
                send,
                413,
                f"the request body has {int(declared)} bytes, more than API_MAX_BODY_BYTES "
                f"({self.max_body_bytes})",
            )
            return
        await self.app(scope, _capped(receive, self.max_body_bytes), send)


class BodyTooLarge(HTTPException):
    """Raised while a streamed body is read past the cap; FastAPI answers it as an HTTP error
    (it lets HTTPException through where it turns other errors of body reading into 400)."""

    def __init__(self, cap: int) -> None:
        super().__init__(413, f"the request body is longer than API_MAX_BODY_BYTES ({cap})")


def _capped(receive: Receive, cap: int) -> Receive:
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > cap:
                raise BodyTooLarge(cap)
        return message

    return counted
