"""A short real run: every file of the run folder exists and decodes; the page works in Chromium
(playable cells on the first screen, every cell's audio, switching cells keeps the playhead, the
error view, the seed picker and the arrow keys)."""

import csv
import json
import shutil

import matplotlib.image
import numpy as np
import pytest
import soundfile
from scipy import signal

from browser import launch, needs_chromium
from pal.cli import main

pytestmark = pytest.mark.slow  # every test here reads one trained run folder

CLIPS, LOSSES, ITERATIONS, EVERY, SEEDS = ["speech", "drums"], ["mse", "perceptual"], 4, 2, [7, 8]
CHECKPOINTS = [2, 4]
# Cells on the page: per clip and seed, the original's row and a row per loss, a column per checkpoint.
CELLS = len(CLIPS) * len(SEEDS) * (1 + len(LOSSES)) * len(CHECKPOINTS)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e") / "run"
    code = main(["run", *CLIPS, "--losses", ",".join(LOSSES), "--iterations", str(ITERATIONS),
                 "--checkpoint-every", str(EVERY), "--seeds", ",".join(map(str, SEEDS)), "--out", str(out),
                 "--no-progress"])
    assert code == 0
    return out


def test_every_file_exists_and_decodes(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    assert config["clip_names"] == CLIPS and config["losses"] == LOSSES and config["seeds"] == SEEDS
    runs = json.loads((run_dir / "runs.json").read_text())
    assert {(r["clip"], r["loss"], r["seed"], r["status"]) for r in runs} == {
        (c, l, s, "finished") for c in CLIPS for l in LOSSES for s in SEEDS}
    metrics = list(csv.DictReader((run_dir / "metrics.csv").open()))
    measured = {(m["clip"], m["loss"], m["iteration"], m["metric"]) for m in metrics}
    assert ("speech", "perceptual", "4", "stoi") in measured and ("drums", "mse", "2", "lsd_high_db") in measured
    assert not any(m["clip"] == "drums" and m["metric"] == "stoi" for m in metrics)  # speech only
    for clip in CLIPS:
        original, rate = soundfile.read(str(run_dir / "clips" / clip / "original.wav"))
        assert rate == 11025 and original.shape == (8192,) and np.abs(original).max() == pytest.approx(1.0)
        # A cell is one pixel per STFT bin and frame (256-sample window, hop 64), as scipy counts them.
        cell_shape = signal.stft(original, nperseg=256, noverlap=192)[2].shape
        assert matplotlib.image.imread(str(run_dir / "clips" / clip / "original.png")).shape[:2] == cell_shape
        for loss, seed in ((loss, seed) for loss in LOSSES for seed in SEEDS):
            folder = run_dir / "clips" / clip / loss / f"seed-{seed}"
            for iteration in CHECKPOINTS:
                audio, rate = soundfile.read(str(folder / f"iter-{iteration:04d}.wav"))
                assert rate == 11025 and audio.shape == (8192,) and np.all(np.isfinite(audio))
                assert np.abs(audio).max() == pytest.approx(1.0, rel=1e-6)  # peak-normalised, as the post
                assert json.loads((folder / "peaks.json").read_text())[str(iteration)] > 0
                assert matplotlib.image.imread(str(folder / f"iter-{iteration:04d}.png")).shape[:2] == cell_shape
                assert matplotlib.image.imread(str(folder / f"iter-{iteration:04d}-error.png")).shape[:2] == cell_shape
            rows = list(csv.reader((folder / "losses.csv").open()))
            assert rows[0] == ["iteration", "loss"] and [int(r[0]) for r in rows[1:]] == [1, 2, 3, 4]
            assert all(np.isfinite(float(r[1])) for r in rows[1:])
    page = (run_dir / "report.html").read_text()
    assert page.count('class="cell"') == CELLS


def test_same_seed_same_audio(run_dir, tmp_path):
    again = tmp_path / "again"
    assert main(["run", "speech", "--losses", "perceptual", "--iterations", str(ITERATIONS),
                 "--checkpoint-every", str(EVERY), "--seed", "8", "--out", str(again), "--no-progress"]) == 0
    for name in ("iter-0002.wav", "iter-0004.wav"):
        first = soundfile.read(str(run_dir / "clips/speech/perceptual/seed-8" / name))[0]
        second = soundfile.read(str(again / "clips/speech/perceptual/seed-8" / name))[0]
        np.testing.assert_array_equal(first, second)


def test_report_rebuilds_from_files(run_dir, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "report.html").unlink()
    for png in copy.rglob("*.png"):
        png.unlink()
    assert main(["report", str(copy)]) == 0
    assert (copy / "report.html").read_text().count('class="cell"') == CELLS
    assert len(list(copy.rglob("*.png"))) == len(list(run_dir.rglob("*.png")))
    assert main(["report", str(tmp_path / "no-such-run")]) == 2



# Every cell's audio, loaded in an element of its own; every image of the visible grids.
LOAD_EVERYTHING = """
async () => {
  const load = src => new Promise(done => {
    const a = new Audio();
    a.addEventListener('loadedmetadata', () => done({src, ok: true, duration: a.duration}));
    a.addEventListener('error', () => done({src, ok: false}));
    a.src = src;
  });
  const audio = await Promise.all([...document.querySelectorAll('button.cell')].map(c => load(c.dataset.audio)));
  const images = [...document.querySelectorAll('table.grid:not([hidden]) img')];
  await Promise.all(images.map(i => i.complete ? null : new Promise(done => {
    i.addEventListener('load', done); i.addEventListener('error', done);
  })));
  return {audio, images: images.map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0}))};
}
"""

# The playing element's position at the moment a click reaches the page, and the next element's
# position when it starts playing: what a listener switching cells hears.
WATCH_SWITCH = """
() => {
  window.switchWatch = {};
  document.addEventListener('click', () => {
    const playing = [...document.querySelectorAll('#players audio')].find(a => !a.paused);
    window.switchWatch = playing ? {from: playing.getAttribute('src'), at: playing.currentTime} : {};
    document.querySelectorAll('#players audio').forEach(a => a.addEventListener('playing', () => {
      if (a.getAttribute('src') !== window.switchWatch.from && window.switchWatch.started === undefined) {
        window.switchWatch.to = a.getAttribute('src'); window.switchWatch.started = a.currentTime;
      }
    }, {once: true}));
  }, true);
}
"""

PLAYING = "() => [...document.querySelectorAll('#players audio')].filter(a => !a.paused).map(a => a.getAttribute('src'))"


def cell(page, clip, seed, row, column):
    return page.locator(f'table.grid[data-clip="{clip}"][data-seed="{seed}"] '
                        f'button.cell[data-row="{row}"][data-column="{column}"]')


@pytest.fixture(scope="module")
def browser_page(run_dir):
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto((run_dir / "report.html").as_uri())
            yield page
        finally:
            browser.close()


@needs_chromium
def test_the_first_screen_has_a_playable_cell_and_every_cell_loads(browser_page):
    page = browser_page
    on_screen = page.evaluate("""() => [...document.querySelectorAll('button.cell')].filter(c => {
        const box = c.getBoundingClientRect();
        return box.width > 0 && box.top >= 0 && box.bottom <= 900 && box.right <= 1400;
      }).map(c => c.dataset.audio)""")
    assert on_screen, "no cell on the first 1400x900 screen"
    media = page.evaluate(LOAD_EVERYTHING)
    assert len(media["audio"]) == CELLS
    for item in media["audio"]:
        assert item["ok"], f"audio did not load: {item['src']}"
        assert item["duration"] == pytest.approx(8192 / 11025, abs=1e-3), item
    assert on_screen[0] in {item["src"] for item in media["audio"] if item["ok"]}
    assert media["images"], "the page shows no image"
    for item in media["images"]:
        assert item["ok"], f"image not shown: {item['src']}"


@needs_chromium
def test_switching_cells_while_playing_keeps_the_position(browser_page):
    page = browser_page
    page.evaluate(WATCH_SWITCH)
    mse, perceptual = cell(page, "speech", 7, 1, 1), cell(page, "speech", 7, 2, 1)
    mse.click()
    page.wait_for_function("() => [...document.querySelectorAll('#players audio')].some(a => !a.paused "
                           "&& a.currentTime > 0.3)", timeout=10000)
    perceptual.click()
    page.wait_for_function("() => window.switchWatch.started !== undefined", timeout=10000)
    watch = page.evaluate("() => window.switchWatch")
    assert watch["from"].endswith("speech/mse/seed-7/iter-0004.wav")
    assert watch["to"].endswith("speech/perceptual/seed-7/iter-0004.wav")
    assert watch["at"] > 0.3 and abs(watch["started"] - watch["at"]) < 0.05, watch
    assert page.evaluate(PLAYING) == [watch["to"]]  # one cell plays at a time

    page.keyboard.press("ArrowUp")  # up the same column to mse, then the original, still playing
    page.wait_for_function(f"() => ({PLAYING})()[0] === 'clips/speech/mse/seed-7/iter-0004.wav'")
    page.keyboard.press("ArrowUp")
    page.wait_for_function(f"() => ({PLAYING})().length === 1 && ({PLAYING})()[0].endsWith('original.wav')")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowLeft")  # mse at the first checkpoint
    page.wait_for_function(f"() => ({PLAYING})()[0] === 'clips/speech/mse/seed-7/iter-0002.wav'")
    page.keyboard.press(" ")
    page.wait_for_function(f"() => ({PLAYING})().length === 0")


@needs_chromium
def test_the_error_view_swaps_every_image(browser_page):
    page = browser_page
    images = "() => [...document.querySelectorAll('button.cell[data-error] img')].map(i => i.getAttribute('src'))"
    before = page.evaluate(images)
    assert len(before) == len(CLIPS) * len(SEEDS) * len(LOSSES) * len(CHECKPOINTS)
    page.click("#show-error")
    after = page.evaluate(images)
    assert all(a == b.replace(".png", "-error.png") for a, b in zip(after, before)) and len(after) == len(before)
    page.wait_for_function("() => [...document.querySelectorAll('table.grid:not([hidden]) button.cell[data-error] img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    page.keyboard.press("e")  # the key toggles back
    assert page.evaluate(images) == before


@needs_chromium
def test_the_seed_picker_switches_the_grids_and_what_plays(browser_page):
    page = browser_page
    visible = "() => [...document.querySelectorAll('table.grid:not([hidden])')].map(g => g.dataset.seed)"
    assert set(page.evaluate(visible)) == {"7"}
    cell(page, "drums", 7, 2, 0).click()
    page.wait_for_function(f"() => ({PLAYING})()[0] === 'clips/drums/perceptual/seed-7/iter-0002.wav'")
    page.select_option("#seed", "8")
    assert set(page.evaluate(visible)) == {"8"}
    page.wait_for_function(f"() => ({PLAYING})()[0] === 'clips/drums/perceptual/seed-8/iter-0002.wav'")
    shown = page.evaluate("() => [...document.querySelectorAll('table.grid:not([hidden]) button.cell[data-error]')]"
                          ".map(c => c.dataset.audio)")
    assert shown and all("/seed-8/" in src for src in shown)
    page.click("#pause")
    page.select_option("#seed", "7")


def test_a_short_run_with_every_loss(tmp_path):
    from pal.losses.registry import registered_names

    losses = registered_names()
    assert {"mse", "perceptual", "perceptual-mse", "l1", "mrstft", "mel-mrstft", "mulaw"} <= set(losses)
    out = tmp_path / "every"
    assert main(["run", "speech", "--losses", ",".join(losses), "--seeds", "0,1", "--iterations", "3",
                 "--checkpoint-every", "3", "--out", str(out), "--no-progress"]) == 0
    runs = json.loads((out / "runs.json").read_text())
    assert len(runs) == len(losses) * 2 and all(run["status"] == "finished" for run in runs)
    for loss in losses:
        audio, _ = soundfile.read(str(out / "clips/speech" / loss / "seed-1/iter-0003.wav"))
        assert audio.shape == (8192,) and np.all(np.isfinite(audio))
    metrics = list(csv.DictReader((out / "metrics.csv").open()))
    assert {m["loss"] for m in metrics} == set(losses)
    page = (out / "report.html").read_text()
    assert "The post&#39;s claims, measured" in page or "The post's claims, measured" in page
