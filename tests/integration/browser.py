"""Headless Chromium for the browser tests: Debian's ``/usr/bin/chromium``, driven by Playwright."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "the dashboard's browser test needs Debian's chromium; install it with "
            "`sudo apt-get install chromium` (it is looked up as `chromium` on PATH)"
        )
    return path


@contextlib.contextmanager
def launched_browser() -> Iterator[Browser]:
    executable = chromium_path()
    with sync_playwright() as playwright:
        # --no-sandbox: the tests may run as root, where Chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            launched.close()
