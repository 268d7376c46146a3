"""The listening test end to end: a real server, raters in headless Chromium, SQLite, a restart.

The raters score by what each hidden item really is (looked up in the store, which the page
never sees), so the results can be checked against the scores given.
"""

import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request

import pytest

from browser import launch, needs_chromium
from pal.cli import main
from pal.listening import store

pytestmark = needs_chromium

SCORES = {"reference": 100, "anchor-3.5kHz": 15, "mse": 40, "perceptual": 60}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """``pal listen`` in its own process, as a user starts it."""

    def __init__(self, run_dir, port):
        self.url = f"http://127.0.0.1:{port}/"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pal.cli", "listen", str(run_dir), "--port", str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.url + "api/test", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {self.process.stdout.read()}")
                time.sleep(0.2)

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process.stdout.close()


def condition_of(run_dir, token):
    with sqlite3.connect(store.database_path(run_dir)) as connection:
        return connection.execute("SELECT condition FROM items WHERE token = ?", (token,)).fetchone()[0]


class Rater:
    """One rater's tab, stepping through the session one screen at a time."""

    def __init__(self, browser, server, run_dir, name):
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.run_dir, self.name = run_dir, name
        self.page.goto(server.url)
        self.page.fill("#rater", name)

    def start(self):
        self.page.click("#start")
        self.page.wait_for_selector("#progress")

    def rate_screen(self) -> bool:
        """Play every item, set every slider, submit; False when the session is over."""
        page = self.page
        if page.query_selector("#done"):
            return False
        progress = page.inner_text("#progress")
        assert page.get_attribute("#submit", "disabled") is not None  # nothing played yet
        page.click("#play-reference")
        for button in page.query_selector_all("button.play"):
            button.click()
            page.wait_for_timeout(150)
        page.wait_for_function("document.querySelectorAll('.item.unplayed').length === 0", timeout=20000)
        for slider in page.query_selector_all("input[type=range]"):
            score = SCORES[condition_of(self.run_dir, slider.get_attribute("data-token"))]
            slider.evaluate("(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", score)
        assert page.get_attribute("#submit", "disabled") is None
        page.click("#submit")
        page.wait_for_function("p => { const el = document.querySelector('#progress');"
                               " return !el || el.textContent !== p; }", arg=progress, timeout=20000)
        return True

    def finish(self):
        while self.rate_screen():
            pass
        assert "saved" in self.page.inner_text("#done")
        self.context.close()


def ratings_by_rater(run_dir):
    rows = store.read_ratings(store.database_path(run_dir))
    by_rater = {}
    for row in rows:
        by_rater.setdefault(row["rater"], []).append((row["clip"], row["condition"], row["score"]))
    return by_rater


@pytest.mark.slow
def test_raters_complete_mushra_sessions_across_a_server_restart(listening_run, tmp_path, capsys):
    import shutil

    playwright = pytest.importorskip("playwright.sync_api")
    run_dir = tmp_path / "run"
    shutil.copytree(listening_run, run_dir)
    port = free_port()
    server = Server(run_dir, port)
    try:
        with playwright.sync_playwright() as p:
            browser = launch(p)
            try:
                ann = Rater(browser, server, run_dir, "ann")
                ann.start()
                ann.finish()
                stored = ratings_by_rater(run_dir)
                assert sorted(stored["ann"]) == sorted((clip, condition, float(score)) for clip in ("speech", "drums")
                                                       for condition, score in SCORES.items())

                server.kill()
                server = Server(run_dir, port)
                assert ratings_by_rater(run_dir)["ann"] == stored["ann"]

                # Two raters at once, in separate browser contexts, screens interleaved.
                bob, cat = Rater(browser, server, run_dir, "bob"), Rater(browser, server, run_dir, "cat")
                bob.start()
                cat.start()
                while bob.rate_screen() | cat.rate_screen():
                    pass
                bob.finish()
                cat.finish()
            finally:
                browser.close()
    finally:
        server.kill()

    stored = ratings_by_rater(run_dir)
    assert sorted(stored) == ["ann", "bob", "cat"] and all(len(rows) == 8 for rows in stored.values())
    with sqlite3.connect(store.database_path(run_dir)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert main(["listen", str(run_dir), "--results"]) == 0
    out = capsys.readouterr().out
    assert "3 rater(s); 0 dropped" in out
    for condition, score in SCORES.items():
        assert f"{condition:<13}  {score:5.1f} ± 0.0" in out  # every rater gave the same score
