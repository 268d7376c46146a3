"""``pal listen`` on a codec run folder: each test file is a screen, each loss's decode at one width,
amount of data and step a condition; ratings keep the setting they rated; ``--results`` goes onto
the codec page. Expectations are worked out here from the files on disk (paths spelled by hand,
level matching by hand), not by calling what is tested."""

import io
import json
import shutil

import numpy as np
import pytest
import soundfile

from browser import launch, needs_chromium
from codec_corpus import quick_args, small_corpus
from pal.cli import main
from pal.listening import results, server, store
from pal.listening.design import ANCHOR, REFERENCE, load_stimuli

fastapi_testclient = pytest.importorskip("fastapi.testclient")
from pal.listening.server import create_app  # noqa: E402

FILES = {"music/beat-with-voice": ("music", "music--beat-with-voice"), "speech/practice": ("speech", "speech--practice")}


@pytest.fixture(scope="module")
def codec_run(tmp_path_factory):
    """Two losses x widths 4 and 6 x 3 s and all data, checkpoints at steps 3 and 6."""
    root = tmp_path_factory.mktemp("codec-listen")
    train, test = small_corpus(root / "corpus")
    out = root / "run"
    assert main(quick_args(train, test, out, "--width", "4,6")) == 0
    return out


@pytest.fixture
def codec_copy(codec_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(codec_run, copy)
    return copy


@pytest.fixture
def served(monkeypatch):
    calls = []
    monkeypatch.setattr(server, "serve", lambda stimuli, host, port: calls.append(stimuli))
    return calls


def decode_path(run, loss, setting, file, step):
    return run / "models" / loss / setting / "seed-0" / FILES[file][1] / f"step-{step:06d}.wav"


def samples(source):
    data, rate = soundfile.read(io.BytesIO(source) if isinstance(source, bytes) else str(source))
    assert rate == 16000
    return data


def rms(x):
    return np.sqrt(np.mean(x ** 2))


def one_line_error(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def check_conditions(run, stimuli, setting, step):
    """Each screen: the test file, level-matched by hand (RMS of the reference, one gain for the
    screen, no peak above 0.99), and each loss's decode of ``setting`` at ``step``."""
    for clip in stimuli.clips:
        test_file = samples(run / "test" / f"{FILES[clip.name][1]}.wav")
        reference = samples(clip.reference)
        gain = rms(reference) / rms(test_file)
        assert 0 < gain <= 1
        np.testing.assert_allclose(reference, test_file * gain, atol=1e-6)
        np.testing.assert_array_equal(samples(clip.conditions[REFERENCE]), reference)
        for name, wav in clip.conditions.items():
            served = samples(wav)
            assert len(served) == len(test_file) and np.abs(served).max() <= 0.99 + 1e-6
            assert rms(served) == pytest.approx(rms(reference), rel=1e-4)
        for loss in ("mse", "mrstft"):
            decode = samples(decode_path(run, loss, setting, clip.name, step))
            expected = decode * (rms(test_file) / rms(decode)) * gain
            np.testing.assert_allclose(samples(clip.conditions[loss]), expected, atol=1e-5)


# -- the stimuli ------------------------------------------------------------------------------------


def test_by_default_the_largest_width_and_all_the_data_at_the_last_step_are_rated(codec_run):
    stimuli = load_stimuli(codec_run)
    assert (stimuli.width, stimuli.train_seconds, stimuli.checkpoint) == (6, "all", 6)
    assert [clip.name for clip in stimuli.clips] == list(FILES)
    assert [clip.title for clip in stimuli.clips] == ["music/beat-with-voice (music)", "speech/practice (speech)"]
    assert stimuli.rated_conditions == [REFERENCE, ANCHOR, "mse", "mrstft"]
    check_conditions(codec_run, stimuli, "w6-all", 6)


@pytest.mark.parametrize("flags, setting, step", [
    ({"width": 4, "train_seconds": "3"}, "w4-3s", 6),
    ({"width": 4, "train_seconds": "3s", "checkpoint": 3}, "w4-3s", 3),
    ({"train_seconds": "all", "checkpoint": 3}, "w6-all", 3),
    ({"width": 4}, "w4-all", 6),
])
def test_the_conditions_are_each_losss_decode_of_the_chosen_setting(codec_run, flags, setting, step):
    stimuli = load_stimuli(codec_run, **flags)
    check_conditions(codec_run, stimuli, setting, step)
    other = load_stimuli(codec_run)  # w6-all at step 6: other sounds
    assert stimuli.clips[0].conditions["mse"] != other.clips[0].conditions["mse"]


def test_preference_plays_two_losses_decodes(codec_run):
    stimuli = load_stimuli(codec_run, "preference", width=4)
    assert stimuli.rated_conditions == ["mse", "mrstft"]


# -- refusals: one line, nothing served --------------------------------------------------------------


@pytest.mark.parametrize("arguments, message", [
    (["--width", "5"], "--width 5: this codec run has no such width; it has 4, 6"),
    (["--train-seconds", "4"], "--train-seconds 4: this codec run has no such amount of training data; it has 3, all"),
    (["--train-seconds", "three"], "it has 3, all"),
    (["--train-seconds", "nan"], "it has 3, all"),
    (["--checkpoint", "4"], "no checkpoint 4 in this codec run; it has 3, 6"),
    (["--compare", "mse,l1"], "no loss 'l1'"),
    (["--mode", "preference", "--compare", "mse"], "exactly two"),
])
def test_a_setting_the_codec_run_does_not_have_is_one_line(codec_run, served, capsys, arguments, message):
    assert main(["listen", str(codec_run), *arguments]) == 2
    assert message in one_line_error(capsys)
    assert not served


@pytest.mark.parametrize("results_flag", [[], ["--results"]])
@pytest.mark.parametrize("flags", [["--width", "4"], ["--train-seconds", "all"], ["--width", "4", "--train-seconds", "3"]])
def test_a_codec_setting_on_a_run_folder_is_refused(run, served, capsys, flags, results_flag):
    assert main(["listen", str(run), *flags, *results_flag]) == 2
    err = one_line_error(capsys)
    assert f"{run}: a pal run folder" in err and "choose a codec run's models" in err
    assert not served and not (run / "listening.txt").exists()


@pytest.mark.parametrize("results_flag", [[], ["--results"]])
def test_a_codec_folder_being_written_is_refused(codec_copy, served, capsys, results_flag):
    from pal.core.locks import writing

    with writing(codec_copy, "codec run"):
        assert main(["listen", str(codec_copy), *results_flag]) == 2
    assert "is writing this codec run folder" in one_line_error(capsys)
    assert not served


def rewrite(path, data, rate=16000):
    soundfile.write(str(path), data, rate, subtype="FLOAT", format="WAV")


@pytest.mark.parametrize("kind, message", [
    ("truncated", "truncated WAV"),
    ("shorter", "samples, not its test file's"),
    ("stereo", "2 channels, not 1"),
    ("another rate", "8000 Hz, not the codec's 16000 Hz"),
    ("not finite", "samples that are not finite"),
])
def test_a_damaged_decode_is_one_line_naming_it(codec_copy, served, capsys, kind, message):
    path = decode_path(codec_copy, "mrstft", "w6-all", "speech/practice", 6)
    data = samples(path)
    {
        "truncated": lambda: path.write_bytes(path.read_bytes()[:-1000]),
        "shorter": lambda: rewrite(path, data[:-10]),
        "stereo": lambda: rewrite(path, np.stack([data, data], axis=1)),
        "another rate": lambda: rewrite(path, data, 8000),
        "not finite": lambda: rewrite(path, np.where(np.arange(len(data)) == 7, np.inf, data)),
    }[kind]()
    assert main(["listen", str(codec_copy)]) == 2
    err = one_line_error(capsys)
    assert str(path) in err and message in err and "--compare" in err
    assert not served
    assert main(["listen", str(codec_copy), "--width", "4"]) == 0 and len(served) == 1  # another setting is intact


def test_a_damaged_test_file_is_one_line_naming_it(codec_copy, served, capsys):
    path = codec_copy / "test" / "music--beat-with-voice.wav"
    rewrite(path, samples(path)[:-1])
    assert main(["listen", str(codec_copy)]) == 2
    err = one_line_error(capsys)
    assert f"{path}: not what pal wrote (31999 samples, not the record's 32000)" in err
    assert not served


def test_a_failed_models_missing_decode_says_why_and_what_works(codec_copy, served, capsys):
    runs = json.loads((codec_copy / "runs.json").read_text())
    failed = next(r for r in runs if (r["loss"], r["width"], r["train_seconds"]) == ("mrstft", 6, None))
    failed.update(status="failed", stopped_at=4, checkpoints=[3], reason="the loss raised\nValueError: boom")
    (codec_copy / "runs.json").write_text(json.dumps(runs))
    for file in FILES:
        decode_path(codec_copy, "mrstft", "w6-all", file, 6).unlink()
    assert main(["listen", str(codec_copy)]) == 2
    err = one_line_error(capsys)
    assert f"{decode_path(codec_copy, 'mrstft', 'w6-all', 'music/beat-with-voice', 6)}: missing" in err
    assert "its model failed at step 4: the loss raised ValueError: boom" in err
    assert "2 decode(s) at step 6 missing in all" in err
    assert "--compare mse, or choose another --checkpoint, --width or --train-seconds" in err
    assert main(["listen", str(codec_copy), "--compare", "mse"]) == 0
    assert main(["listen", str(codec_copy), "--checkpoint", "3"]) == 0
    assert main(["listen", str(codec_copy), "--train-seconds", "3"]) == 0 and len(served) == 3


def test_a_running_models_missing_decode_says_it_is_not_finished(codec_copy, served, capsys):
    runs = json.loads((codec_copy / "runs.json").read_text())
    for r in runs:
        r.update(status="running", checkpoints=[3])
    (codec_copy / "runs.json").write_text(json.dumps(runs))
    decode_path(codec_copy, "mse", "w6-all", "speech/practice", 6).unlink()
    assert main(["listen", str(codec_copy)]) == 2
    assert "missing (its model is not finished)" in one_line_error(capsys)


# -- a rating round trip, and the results on the codec page ----------------------------------------


def rate_every_screen(client, score):
    created = client.post("/api/sessions", json={"rater": f"r{score}"}).json()
    for screen in created["screens"]:
        for item in screen["items"]:
            assert client.post("/api/played", json={"session": created["session"], "token": item["token"]}).status_code == 204
        body = {"session": created["session"], "clip": screen["clip"],
                "scores": {item["token"]: score for item in screen["items"]}}
        assert client.post("/api/ratings", json=body).status_code == 201
    return created


def test_ratings_keep_their_setting_and_the_results_go_onto_the_codec_page(codec_copy, capsys):
    database = store.database_path(codec_copy)
    assert main(["listen", str(codec_copy), "--results"]) == 0
    assert "no ratings yet" in capsys.readouterr().out
    client = fastapi_testclient.TestClient(create_app(load_stimuli(codec_copy), database))
    assert client.get("/api/test").json()["kind"] == "codec" and "Test file" in client.get("/").text
    created = rate_every_screen(client, 95)
    assert {screen["title"] for screen in created["screens"]} == {"music/beat-with-voice (music)",
                                                                  "speech/practice (speech)"}
    for screen in created["screens"]:  # each item plays the sound of its screen's file
        lengths = {len(samples(client.get(item["url"]).content)) for item in screen["items"]}
        assert lengths == {32000 if screen["clip"].startswith("music") else 20063}
    small = fastapi_testclient.TestClient(create_app(load_stimuli(codec_copy, width=4, train_seconds="3"), database))
    rate_every_screen(small, 40)
    rows = store.read_ratings(database)
    assert {(r["width"], r["train_seconds"], r["checkpoint"], r["score"]) for r in rows} == {
        (6, "all", 6, 95.0), (4, "3s", 6, 40.0)}
    assert len(rows) == 2 * 2 * 4
    assert main(["listen", str(codec_copy), "--results"]) == 0
    out = capsys.readouterr().out
    small_block, large_block = out.split("\n\n")[:2]  # never pooled: one block per setting, smaller first
    assert small_block.startswith("MUSHRA, width 4, 3s data, step 6: 1 rater(s)") and "95.0" not in small_block
    assert large_block.startswith("MUSHRA, width 6, all data, step 6: 1 rater(s)") and "40.0" not in large_block
    assert "speech/practice:" in large_block and "n = 2" in large_block  # all files: two screens
    assert f"report: {codec_copy / 'report.html'}" in out
    page = (codec_copy / "report.html").read_text()
    assert 'id="listening"' in page and "MUSHRA, width 6, all data, step 6" in page
    assert 'src="listening.png"' in page and (codec_copy / "listening.png").is_file()
    assert 'id="results-table"' in page  # the rest of the page is still there


@pytest.mark.slow
@needs_chromium
def test_a_rater_in_chromium_is_told_which_test_file_each_screen_plays(codec_copy):
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    playwright = pytest.importorskip("playwright.sync_api")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    process = subprocess.Popen([sys.executable, "-m", "pal.cli", "listen", str(codec_copy), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "api/test", timeout=2):
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
                time.sleep(0.2)
        with playwright.sync_playwright() as p:
            browser = launch(p)
            try:
                page = browser.new_page()
                page.goto(url)
                page.wait_for_selector("#rater")
                assert "You will hear 2 test files (recordings)" in page.inner_text("#app")
                page.fill("#rater", "ann")
                page.click("#start")
                page.wait_for_selector("#progress")
                progress = page.inner_text("#progress")
                assert progress in ("Test file 1 of 2: music/beat-with-voice (music)",
                                    "Test file 1 of 2: speech/practice (speech)")
                for button in page.query_selector_all("button.play"):
                    button.click()
                    page.wait_for_timeout(150)
                page.wait_for_function("document.querySelectorAll('.item.unplayed').length === 0", timeout=20000)
                page.click("#submit")
                page.wait_for_function("p => document.querySelector('#progress').textContent !== p", arg=progress,
                                       timeout=20000)
                assert page.inner_text("#progress").startswith("Test file 2 of 2: ")
            finally:
                browser.close()
    finally:
        process.kill()
        process.wait(timeout=10)
        process.stdout.close()
    rows = store.read_ratings(store.database_path(codec_copy))
    assert len(rows) == 4 and {(r["width"], r["train_seconds"], r["checkpoint"]) for r in rows} == {(6, "all", 6)}
    assert f"{rows[0]['clip']} (" in progress
