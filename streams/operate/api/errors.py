"""Error answers of the API: always JSON ``{"detail": "..."}``, never a traceback.

- Invalid parameters and bodies: 400 ``"<parameter>: <what was expected>, got <value>"``. What
  was expected is the ``description`` the parameter is declared with (so the OpenAPI document
  and the message agree), else pydantic's own words.
- PostgreSQL or Redis unreachable: 503 naming the server, without URLs or passwords.
- Anything else: 500 ``"internal error"``; the traceback goes to the log only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger("delaycast.api")

_SOURCES = ("query", "path", "header", "cookie", "body")
_VALUE_CHARS = 60


def expected_by_parameter(route: APIRoute | None) -> dict[str, str]:
    """The ``description`` of each parameter and body field of ``route``, by name."""
    if route is None:
        return {}
    dependant = route.dependant
    expected: dict[str, str] = {}
    for field in (*dependant.query_params, *dependant.path_params, *dependant.header_params):
        if field.field_info.description:
            expected[field.alias] = field.field_info.description
    for body in dependant.body_params:
        model = body.field_info.annotation
        for name, info in getattr(model, "model_fields", {}).items():
            if info.description:
                expected[info.alias or name] = info.description
    return expected


def _parameter(loc: Sequence[Any]) -> str:
    parts = list(loc[1:] if loc and loc[0] in _SOURCES else loc)
    named = [str(p) for p in parts if isinstance(p, str)]
    return ".".join(named) or (str(loc[0]) if loc else "request")


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 1] + "…"


def describe_error(error: Mapping[str, Any], expected: Mapping[str, str]) -> str:
    """One pydantic/FastAPI validation error as ``"<parameter>: <expected>, got <value>"``."""
    kind = error.get("type", "")
    name = _parameter(error.get("loc", ()))
    if kind == "json_invalid":
        return "body: a JSON object, got invalid JSON"
    if name == "body" and kind == "missing":
        return "body: a JSON object, got nothing"
    wanted = expected.get(name)
    if wanted is None:
        message = str(error.get("msg", "a valid value"))
        wanted = message[:1].lower() + message[1:]
    got = "nothing" if kind == "missing" else _shown(error.get("input"))
    return f"{name}: {wanted}, got {got}"


def validation_message(errors: Sequence[Mapping[str, Any]], route: APIRoute | None) -> str:
    expected = expected_by_parameter(route)
    return "; ".join(dict.fromkeys(describe_error(e, expected) for e in errors))


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    route = request.scope.get("route")
    message = validation_message(exc.errors(), route if isinstance(route, APIRoute) else None)
    return JSONResponse({"detail": message}, status_code=400)


async def _postgres_down(request: Request, exc: Exception) -> JSONResponse:
    log.warning(
        "[API] %s %s: PostgreSQL error %s", request.method, request.url.path, type(exc).__name__
    )
    return JSONResponse(
        {"detail": f"PostgreSQL is unavailable ({type(exc).__name__}); try again later"},
        status_code=503,
    )


async def _redis_down(request: Request, exc: Exception) -> JSONResponse:
    log.warning("[API] %s %s: Redis error %s", request.method, request.url.path, type(exc).__name__)
    return JSONResponse(
        {"detail": f"Redis is unavailable ({type(exc).__name__}); try again later"},
        status_code=503,
    )


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "[API] %s %s failed",
        request.method,
        request.url.path,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return JSONResponse({"detail": "internal error; see the API's log"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(SQLAlchemyError, _postgres_down)
    app.add_exception_handler(RedisError, _redis_down)
    app.add_exception_handler(Exception, _internal)


def openapi_with_400(app: FastAPI) -> None:
    """Make the OpenAPI document say what the API does: 400 with :class:`ErrorDetail` for
    invalid parameters, where FastAPI would document its default 422."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses", {})
                if responses.pop("422", None) is not None:
                    responses["400"] = {
                        "description": "Invalid parameter",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ErrorDetail"}
                            }
                        },
                    }
        components = schema.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
