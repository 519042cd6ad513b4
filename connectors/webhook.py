"""Posting alerts to an operator's webhook (requests, with a timeout and the retries of
:mod:`connectors.failures`).

The URL may carry a token, so it never appears in logs or errors: only its host does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import requests
from pydantic import SecretStr
from tenacity import stop_after_attempt, wait_exponential

from connectors.failures import retrying
from schemas import Alert

log = logging.getLogger("delaycast.alerts")


class WebhookNotifier:
    def __init__(
        self,
        url: SecretStr,
        *,
        timeout_s: float = 3.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        session: requests.Session | None = None,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self._url = url
        self.host = urlsplit(url.get_secret_value()).hostname or "webhook"
        self._timeout_s = timeout_s
        self._retries = retries
        self._backoff_s = backoff_s
        self._session = session or requests.Session()
        self._sleep = sleep

    def send(self, alert: Alert) -> bool:
        """POST the alert as JSON; True once the webhook answered 2xx. Never raises."""
        body = alert.model_dump_json()

        def post() -> None:
            try:
                response = self._session.post(
                    self._url.get_secret_value(),
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=self._timeout_s,
                )
            except requests.RequestException as exc:
                raise _Failed(type(exc).__name__, passes=True) from None  # its text: the URL
            status = response.status_code
            if not 200 <= status < 300:
                # A 4xx other than 429 refuses the request itself: sending again will not help.
                refused = 400 <= status < 500 and status != 429
                raise _Failed(f"HTTP {status}", passes=not refused)

        try:
            retrying(
                retry_on=lambda exc: isinstance(exc, _Failed) and exc.passes,
                wait=wait_exponential(multiplier=self._backoff_s),
                stop=stop_after_attempt(self._retries + 1),
                sleep=self._sleep,
            )(post)
        except _Failed as failed:
            log.warning(
                "[ML] alert %s not delivered to webhook at %s: %s",
                alert.alert_id,
                self.host,
                failed,
            )
            return False
        return True


class _Failed(Exception):
    """A delivery that failed; ``passes`` when sending again may succeed."""

    def __init__(self, problem: str, *, passes: bool) -> None:
        super().__init__(problem)
        self.passes = passes
