"""Posting alerts to an operator's webhook (requests, with a timeout and retries).

The URL may carry a token, so it never appears in logs or errors: only its host does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import requests
from pydantic import SecretStr

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
        for attempt in range(self._retries + 1):
            try:
                response = self._session.post(
                    self._url.get_secret_value(),
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=self._timeout_s,
                )
                if 200 <= response.status_code < 300:
                    return True
                problem = f"HTTP {response.status_code}"
                if 400 <= response.status_code < 500 and response.status_code != 429:
                    break  # the request itself is refused: retrying will not help
            except requests.RequestException as exc:
                problem = type(exc).__name__  # the message would contain the URL
            if attempt < self._retries:
                self._sleep(self._backoff_s * 2**attempt)
        log.warning(
            "[ML] alert %s not delivered to webhook at %s: %s", alert.alert_id, self.host, problem
        )
        return False
