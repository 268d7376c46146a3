"""Debian's chromium, driven by Playwright, for the tests that need a real browser.

``make test`` installs chromium (scripts/ensure-chromium); on a machine without it these tests
skip, except under CI, where a missing browser is a failure.
"""

import os
import shutil

import pytest

CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]

needs_chromium = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                    reason="Debian's chromium is not installed")


def launch(playwright):
    """A headless Chromium from Debian's package, with the flags this project runs it with."""
    assert CHROMIUM, "chromium is missing: `make test` installs it (scripts/ensure-chromium)"
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
