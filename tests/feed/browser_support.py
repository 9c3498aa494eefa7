"""The browser the feed's browser tests drive through Playwright: Debian's Chromium (``CHROMIUM``; a test skips or
fails through ``conftest._require`` when it is missing) and the flags it is started with (``CHROMIUM_ARGS``: headless
in a container, nothing fetched from the network on its own: no component updates, sync or background requests)."""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
