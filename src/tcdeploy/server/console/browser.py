"""How the console's browser tests and `make screenshots` start Chromium: Debian's package (the
download of `playwright install` cannot reach its host here), headless, with every background
connection off — without those flags Chromium keeps calling hosts a closed network lacks."""

from __future__ import annotations

from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip


def launch_chromium(playwright: Any) -> Any:
    """A Playwright `Browser` on Debian's Chromium."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
