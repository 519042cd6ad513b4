"""The monitoring HTTP API (``delaycast api``): metrics per arm, A/B, alerts, flags, health,
Prometheus ``/metrics`` and the dashboard. See :func:`create_app`."""

from streams.operate.api.app import create_app

__all__ = ["create_app"]
