"""``delaycast api``: serve the monitoring API, ``/metrics`` and the dashboard (uvicorn)."""

from __future__ import annotations

import errno
import logging
import socket
import sys

import click


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _check_free(host: str, port: int) -> None:
    """Fail with a usage error, not a traceback, when the address cannot be listened on."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise click.BadParameter(f"{host!r} is not an address here ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            reason = "is in use" if exc.errno == errno.EADDRINUSE else f"fails ({exc.strerror})"
            raise click.UsageError(
                f"listening on {host}:{port} {reason}; choose another with --port or API_PORT"
            ) from None


@click.command()
@click.option("--host", default=None, help="Address to listen on (default: API_HOST, 127.0.0.1).")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port to listen on, 1-65535 (default: API_PORT, 8000).",
)
def api(host: str | None, port: int | None) -> None:
    """Serve the monitoring API, /metrics and the dashboard.

    Reads PostgreSQL, Redis and Kafka (consumer lag), so it shows the whole system however many
    workers run. Flag changes (POST) need API_TOKEN, sent as 'Authorization: Bearer <token>'.

    \b
    Examples:
      delaycast api                          # http://127.0.0.1:8000/ml-monitoring
      delaycast api --port 8080
      API_TOKEN=... delaycast api --host 0.0.0.0
      curl -s localhost:8000/api/health
      curl -s localhost:8000/api/ml-monitoring/summary?hours=24
      curl -s -X POST -H "Authorization: Bearer $API_TOKEN" -H 'Content-Type: application/json' \\
           -d '{"percentage": 10, "actor": "alice"}' localhost:8000/api/feature-flags/ml/enable
    """
    import uvicorn

    from streams.operate.api import create_app
    from streams.settings import get_settings

    settings = get_settings()
    host = host or settings.api_host
    port = port or settings.api_port
    _check_free(host, port)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    log = logging.getLogger("delaycast.api")
    app = create_app(settings.model_copy(update={"api_host": host, "api_port": port}))
    base = _url(host, port)
    log.info(
        "[API] dashboard at %s/ml-monitoring, API under %s/api, Prometheus at %s/metrics; "
        "flag changes %s",
        base,
        base,
        base,
        "enabled (API_TOKEN set)" if settings.api_token else "disabled (no API_TOKEN)",
    )
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower(), access_log=False)
