"""A short real run: every file of the run folder exists and decodes; the page renders in Chromium."""

import csv
import json
import shutil

import matplotlib.image
import numpy as np
import pytest
import soundfile

from browser import launch, needs_chromium
from pal.cli import main

pytestmark = pytest.mark.slow  # every test here reads one trained run folder

CLIPS, LOSSES, ITERATIONS, EVERY = ["speech", "drums"], ["mse", "perceptual"], 4, 2


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e") / "run"
    code = main(["run", *CLIPS, "--losses", ",".join(LOSSES), "--iterations", str(ITERATIONS),
                 "--checkpoint-every", str(EVERY), "--seed", "7", "--out", str(out), "--no-progress"])
    assert code == 0
    return out


def test_every_file_exists_and_decodes(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    assert config["clip_names"] == CLIPS and config["losses"] == LOSSES and config["seeds"] == [7]
    runs = json.loads((run_dir / "runs.json").read_text())
    assert {(r["clip"], r["loss"], r["seed"], r["status"]) for r in runs} == {(c, l, 7, "finished") for c in CLIPS for l in LOSSES}
    metrics = list(csv.DictReader((run_dir / "metrics.csv").open()))
    measured = {(m["clip"], m["loss"], m["iteration"], m["metric"]) for m in metrics}
    assert ("speech", "perceptual", "4", "stoi") in measured and ("drums", "mse", "2", "lsd_high_db") in measured
    assert not any(m["clip"] == "drums" and m["metric"] == "stoi" for m in metrics)  # speech only
    for clip in CLIPS:
        original, rate = soundfile.read(str(run_dir / "clips" / clip / "original.wav"))
        assert rate == 11025 and original.shape == (8192,) and np.abs(original).max() == pytest.approx(1.0)
        assert matplotlib.image.imread(str(run_dir / "clips" / clip / "original.png")).shape[0] > 100
        assert matplotlib.image.imread(str(run_dir / "clips" / clip / "losses.png")).shape[0] > 100
        for loss in LOSSES:
            folder = run_dir / "clips" / clip / loss / "seed-7"
            for iteration in (2, 4):
                audio, rate = soundfile.read(str(folder / f"iter-{iteration:04d}.wav"))
                assert rate == 11025 and audio.shape == (8192,) and np.all(np.isfinite(audio))
                assert np.abs(audio).max() == pytest.approx(1.0, rel=1e-6)  # peak-normalised, as the post
                assert json.loads((folder / "peaks.json").read_text())[str(iteration)] > 0
                assert matplotlib.image.imread(str(folder / f"iter-{iteration:04d}.png")).shape[0] > 100
            rows = list(csv.reader((folder / "losses.csv").open()))
            assert rows[0] == ["iteration", "loss"] and [int(r[0]) for r in rows[1:]] == [1, 2, 3, 4]
            assert all(np.isfinite(float(r[1])) for r in rows[1:])
    page = (run_dir / "report.html").read_text()
    assert page.count("<audio") == len(CLIPS) * (1 + len(LOSSES) * 2)


def test_same_seed_same_audio(run_dir, tmp_path):
    again = tmp_path / "again"
    assert main(["run", "speech", "--losses", "perceptual", "--iterations", str(ITERATIONS),
                 "--checkpoint-every", str(EVERY), "--seed", "7", "--out", str(again), "--no-progress"]) == 0
    for name in ("iter-0002.wav", "iter-0004.wav"):
        first = soundfile.read(str(run_dir / "clips/speech/perceptual/seed-7" / name))[0]
        second = soundfile.read(str(again / "clips/speech/perceptual/seed-7" / name))[0]
        np.testing.assert_array_equal(first, second)


def test_report_rebuilds_from_files(run_dir, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "report.html").unlink()
    for png in copy.rglob("*.png"):
        png.unlink()
    assert main(["report", str(copy)]) == 0
    assert (copy / "report.html").read_text().count("<audio") == (run_dir / "report.html").read_text().count("<audio")
    assert len(list(copy.rglob("*.png"))) == len(list(run_dir.rglob("*.png")))
    assert main(["report", str(tmp_path / "no-such-run")]) == 2



WAIT_FOR_MEDIA = """
async () => {
  const audio = [...document.querySelectorAll('audio')];
  await Promise.all(audio.map(a => a.readyState >= 1 || a.error ? null : new Promise(done => {
    a.addEventListener('loadedmetadata', done); a.addEventListener('error', done); a.load();
  })));
  const images = [...document.querySelectorAll('img')];
  await Promise.all(images.map(i => i.complete ? null : new Promise(done => {
    i.addEventListener('load', done); i.addEventListener('error', done);
  })));
  return {
    audio: audio.map(a => ({src: a.getAttribute('src'), ok: !a.error && a.readyState >= 1, duration: a.duration})),
    images: images.map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0})),
  };
}
"""


@needs_chromium
def test_page_renders_in_headless_chromium(run_dir):
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page()
            page.goto((run_dir / "report.html").as_uri())
            media = page.evaluate(WAIT_FOR_MEDIA)
        finally:
            browser.close()
    assert len(media["audio"]) == len(CLIPS) * (1 + len(LOSSES) * 2)
    for item in media["audio"]:
        assert item["ok"], f"audio did not load: {item['src']}"
        assert item["duration"] == pytest.approx(8192 / 11025, abs=1e-3), item
    assert media["images"], "the page shows no image"
    for item in media["images"]:
        assert item["ok"], f"image not shown: {item['src']}"


def test_a_short_run_with_every_loss(tmp_path):
    from pal.losses import registered_names

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
