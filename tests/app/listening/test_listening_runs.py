"""The listening test on every legitimate run, and nothing it serves or writes is forged.

Each class is generated: labels for any number of conditions, every file the server reads x every
kind of damage, every hidden Unicode character in a rater's name at every position, every text
field of the results. Expectations come from elsewhere: an enumeration of letter strings, Python's
``unicodedata`` categories and ``str.splitlines``, Perl's Default_Ignorable_Code_Point property.
"""

import functools
import itertools
import json
import shutil
import sqlite3
import string
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
import soundfile

from pal.core.audio import float_wav_bytes
from pal.cli import main
from pal.listening import results, store, text
from pal.listening.design import ANCHOR, REFERENCE, ClipStimuli, Stimuli, load_stimuli
from pal.run.folder import RunFolder

fastapi_testclient = pytest.importorskip("fastapi.testclient")
from pal.listening import server  # noqa: E402
from pal.listening.server import create_app, item_label  # noqa: E402

RATE = 11025


@pytest.fixture(scope="module")
def one_loss_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("one-loss") / "run"
    assert main(["run", "drums", "--losses", "mse", "--iterations", "1", "--checkpoint-every", "1",
                 "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.fixture
def served(monkeypatch):
    """What ``pal listen`` would have served (its stimuli), without starting a server."""
    calls = []
    monkeypatch.setattr(server, "serve", lambda stimuli, host, port: calls.append(stimuli))
    return calls


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def listen(*arguments) -> int:
    return main(["listen", *map(str, arguments)])


# -- labels: any number of conditions ---------------------------------------------------------------


def spreadsheet_columns():
    """A, ..., Z, AA, ..., ZZ, AAA, ...: every string of capital letters, shortest first."""
    for length in itertools.count(1):
        for letters in itertools.product(string.ascii_uppercase, repeat=length):
            yield "".join(letters)


@pytest.mark.parametrize("count", [1, 2, 25, 26, 27, 52, 53, 100, 702, 703, 2000])
def test_item_labels_are_every_letter_string_in_order(count):
    labels = [item_label(position) for position in range(count)]
    assert labels == list(itertools.islice(spreadsheet_columns(), count))
    assert len(set(labels)) == count


def in_memory_stimuli(losses: int, mode: str = "mushra", clips: int = 2) -> Stimuli:
    """Stimuli of ``losses`` conditions (plus reference and anchor in MUSHRA), each a distinct tone."""
    t = np.arange(512) / RATE
    tone = lambda hz: float_wav_bytes(0.5 * np.sin(2 * np.pi * hz * t), RATE)  # noqa: E731
    conditions = {f"loss-{index}": tone(200 + 10 * index) for index in range(losses)}
    if mode == "mushra":
        conditions = {REFERENCE: tone(100), ANCHOR: tone(150), **conditions}
    return Stimuli(None, mode, 1, RATE, [ClipStimuli(f"clip-{c}", tone(100), dict(conditions)) for c in range(clips)])


def rate_every_screen(client, created, score=50):
    for screen in created["screens"]:
        for item in screen["items"]:
            played = {"session": created["session"], "token": item["token"]}
            assert client.post("/api/played", json=played).status_code == 204
        scores = {item["token"]: score for item in screen["items"]}
        body = {"session": created["session"], "clip": screen["clip"], "scores": scores}
        assert client.post("/api/ratings", json=body).status_code == 201


@pytest.mark.parametrize("losses", [1, 2, 24, 25, 27, 100])
def test_a_mushra_session_of_any_number_of_losses_is_labelled_served_and_stored(tmp_path, losses):
    clips = 1 if losses > 50 else 2
    stimuli = in_memory_stimuli(losses, clips=clips)
    database = tmp_path / "listening.sqlite"
    client = fastapi_testclient.TestClient(create_app(stimuli, database))
    created = client.post("/api/sessions", json={"rater": "ann"})
    assert created.status_code == 200
    created = created.json()
    items = losses + 2
    for screen in created["screens"]:
        assert [item["label"] for item in screen["items"]] == list(itertools.islice(spreadsheet_columns(), items))
        sounds = {client.get(item["url"]).content for item in screen["items"]}
        assert len(sounds) == items  # each label plays its own condition
    rate_every_screen(client, created, 60)
    ratings = store.read_ratings(database)
    assert len(ratings) == clips * items and {row["score"] for row in ratings} == {60.0}
    summary = results.results_text(ratings, [])
    for condition in stimuli.rated_conditions:
        assert f"  {condition} " in summary


@pytest.fixture(scope="module")
def many_loss_run(tmp_path_factory):
    """A real run of 27 losses: one user loss file with 27 options."""
    folder = tmp_path_factory.mktemp("many-losses")
    (folder / "power.py").write_text(
        "from torch import nn\n\n\nclass Power(nn.Module):\n"
        "    def __init__(self, sample_rate, power=1.0):\n        super().__init__()\n        self.power = power\n\n"
        "    def forward(self, input, target):\n        return (input - target).abs().pow(self.power).mean()\n")
    losses = ",".join(f"{folder / 'power.py'}:Power:power={1 + index / 10:g}" for index in range(27))
    assert main(["run", "drums", "--losses", losses, "--iterations", "1", "--checkpoint-every", "1",
                 "--out", str(folder / "run"), "--no-progress"]) == 0
    return folder / "run"


def test_a_run_of_27_losses_is_rated_and_summarised(many_loss_run, capsys):
    stimuli = load_stimuli(many_loss_run)
    assert len(stimuli.rated_conditions) == 29
    client = fastapi_testclient.TestClient(create_app(stimuli, store.database_path(many_loss_run)))
    created = client.post("/api/sessions", json={"rater": "ann"}).json()
    assert [item["label"] for item in created["screens"][0]["items"]][-3:] == ["AA", "AB", "AC"]
    rate_every_screen(client, created, 95)
    summary = results.write_page_section(many_loss_run)
    assert summary.count("n = 1") == 2 * 29  # drums and all clips, every condition
    assert (many_loss_run / "listening.png").is_file()


# -- preference needs two losses ----------------------------------------------------------------------


@pytest.mark.parametrize("arguments, message", [
    (["--mode", "preference"], "this run has only mse"),
    (["--mode", "preference", "--compare", "mse"], "exactly two"),
    (["--mode", "preference", "--compare", "mse,mse"], "names a loss twice"),
    (["--compare", ","], "names no loss"),
])
def test_a_test_the_run_cannot_fill_is_refused_at_start(one_loss_run, served, capsys, arguments, message):
    assert listen(one_loss_run, *arguments) == 2
    assert message in one_line_error(capsys)
    assert not served


def test_a_one_loss_run_is_rated_in_mushra(one_loss_run, served, capsys):
    assert listen(one_loss_run) == 0
    (stimuli,) = served
    assert stimuli.rated_conditions == [REFERENCE, ANCHOR, "mse"]


# -- every file the server reads, every kind of damage ------------------------------------------------


def served_files(run_dir, checkpoint=2):
    """Every file a test at ``checkpoint`` plays: each clip's original and each loss's checkpoint."""
    folder = RunFolder(run_dir)
    config = folder.read_config()
    originals = [folder.original(clip) for clip in config.clip_names]
    checkpoints = [folder.checkpoint(clip, loss, config.seeds[0], checkpoint)
                   for clip in config.clip_names for loss in config.losses]
    return [*originals, *checkpoints]


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def rewrite(path, samples, rate=RATE, subtype="FLOAT"):
    soundfile.write(str(path), samples, rate, subtype=subtype, format="WAV")


def damage(path, kind):
    samples = soundfile.read(str(path))[0]
    {
        "truncated": lambda: truncate(path),
        "garbage": lambda: path.write_bytes(b"\x00\x01not audio\xff" * 50),
        "empty": lambda: path.write_bytes(b""),
        "missing": lambda: path.unlink(),
        "a folder": lambda: (path.unlink(), path.mkdir()),
        "shorter": lambda: rewrite(path, samples[:4096]),
        "longer": lambda: rewrite(path, np.concatenate([samples, samples])),
        "another rate": lambda: rewrite(path, samples, 22050),
        "stereo": lambda: rewrite(path, np.stack([samples, samples], axis=1)),
        "not finite": lambda: rewrite(path, np.where(np.arange(len(samples)) == 100, np.nan, samples)),
    }[kind]()


KINDS = ["truncated", "garbage", "empty", "missing", "a folder", "shorter", "longer", "another rate", "stereo",
         "not finite"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("which", range(6))  # 2 originals, then 2 clips x 2 losses
def test_a_damaged_file_the_test_would_play_is_one_line_naming_it(run, served, capsys, kind, which):
    path = served_files(run)[which]
    damage(path, kind)
    assert listen(run) == 2
    err = one_line_error(capsys)
    assert str(path) in err
    assert not served


def test_a_truncated_checkpoint_is_not_served_as_a_fragment(run, served, capsys):
    path = served_files(run)[2]
    truncate(path)
    assert listen(run) == 2
    err = one_line_error(capsys)
    assert f"{path}: truncated WAV" in err and "--compare" in err


def test_a_removed_checkpoint_of_a_finished_run_says_so(run, served, capsys):
    path = served_files(run)[5]
    path.unlink()
    assert listen(run) == 2
    assert f"{path}: missing (the file was removed after its run finished)" in one_line_error(capsys)


@pytest.mark.parametrize("kind", ["truncated", "garbage", "missing"])
def test_damage_at_a_checkpoint_not_played_does_not_stop_the_test(run, served, kind):
    damage(served_files(run, checkpoint=1)[2], kind)
    assert listen(run, "--checkpoint", 2) == 0 and len(served) == 1


def test_a_failed_runs_missing_checkpoint_says_why_and_what_works(run, served, capsys):
    folder = RunFolder(run)
    statuses = folder.read_runs()
    failed = next(status for status in statuses if (status.clip, status.loss) == ("drums", "perceptual"))
    failed.status, failed.stopped_at, failed.checkpoints = "failed", 2, [1]
    failed.reason = "the loss raised\nValueError: boom"  # a loss's own message, over two lines
    folder.write_runs(statuses)
    folder.checkpoint("drums", "perceptual", failed.seed, 2).unlink()
    assert listen(run) == 2
    err = one_line_error(capsys)
    assert "drums/perceptual/seed-0/iter-0002.wav: missing" in err
    assert "failed at iteration 2: the loss raised ValueError: boom" in err
    assert "--compare mse" in err
    assert listen(run, "--compare", "mse") == 0 and listen(run, "--checkpoint", 1) == 0
    assert listen(run, "--mode", "preference") == 2  # the one loss left cannot be compared
    assert "--compare" not in one_line_error(capsys)


# -- what is given is a run folder ----------------------------------------------------------------


def fake_sweep(tmp_path, run, with_shard):
    from pal.sweeps.shard import SHARDS, SWEEP_FILE

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / SWEEP_FILE).write_text(json.dumps({"settings": {}, "windows": [], "shards": []}))
    if with_shard:
        shutil.copytree(run, sweep / SHARDS / "shard-0000")
    return sweep


@pytest.mark.parametrize("results_flag", [[], ["--results"]])
@pytest.mark.parametrize("given, message", [
    ("sweep", "a sweep folder, not a run folder; pal listen takes a run folder: its shards, once they have run"),
    ("sweep with a shard", "a sweep folder, not a run folder; pal listen takes a run folder: one of its shards, "
                           "such as "),
    ("empty folder", "not a run folder (no config.json)"),
    ("a clip's folder", "not a run folder (no config.json)"),
    ("nothing", "no such run folder"),
])
def test_a_folder_that_is_not_a_run_is_named_not_reported_empty(run, tmp_path, served, capsys, given, message,
                                                                results_flag):
    path = {
        "sweep": lambda: fake_sweep(tmp_path, run, False),
        "sweep with a shard": lambda: fake_sweep(tmp_path, run, True),
        "empty folder": lambda: (tmp_path / "empty").mkdir() or tmp_path / "empty",
        "a clip's folder": lambda: run / "clips" / "drums",
        "nothing": lambda: tmp_path / "absent",
    }[given]()
    assert listen(path, *results_flag) == 2
    err = one_line_error(capsys)
    assert err.startswith(f"pal: error: {path}") and message in err and "no ratings yet" not in err
    assert not served and not (path / "listening.sqlite").exists()


@pytest.mark.slow
def test_a_real_sweep_is_named_and_its_shard_is_a_run(tmp_path, served, capsys):
    soundfile.write(str(tmp_path / "tone.wav"), 0.3 * np.sin(np.arange(20000) * 0.05), RATE)
    sweep = tmp_path / "sweep"
    assert main(["sweep", str(tmp_path / "tone.wav"), "--losses", "mse,perceptual", "--iterations", "1",
                 "--checkpoint-every", "1", "--out", str(sweep), "--no-progress"]) == 0
    capsys.readouterr()
    assert listen(sweep, "--results") == 2
    assert f"{sweep}: a sweep folder, not a run folder" in one_line_error(capsys)
    shard = sweep / "shards" / "shard-0000"
    assert listen(shard, "--results") == 0 and "no ratings yet" in capsys.readouterr().out
    assert listen(shard, "--mode", "preference") == 0 and served[0].rated_conditions == ["mse", "perceptual"]


# -- rater names: one rule ----------------------------------------------------------------------------

HIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


@functools.cache
def code_points_by_category() -> dict[str, list[str]]:
    """Every code point, by its ``unicodedata`` category."""
    table: dict[str, list[str]] = {}
    for code in range(sys.maxunicode + 1):
        table.setdefault(unicodedata.category(chr(code)), []).append(chr(code))
    return table


def in_categories(*categories: str) -> list[str]:
    return [char for category in categories for char in code_points_by_category().get(category, [])]


# Invisible characters people paste to look blank or like someone else (independent of any rule).
KNOWN_INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u034f", "\u180e", "\u3164",
                   "\u115f", "\u1160", "\uffa0", "\u2800", "\ufe0f", "\U000e0020", "\U000e0100", "\u17b4"]
GOOD_NAMES = ["ann", "Zoë", "Zoe\u0308", "李雷", "José María", "rater-07", "O'Brien", "ann 😀", "محمد", "a\u00a0b",
              "x" * 80, "#3", "  bob  "]


def splits_a_line(char: str) -> bool:
    return len(f"a{char}b".splitlines()) > 1


def default_ignorable_from_perl() -> set[str]:
    perl = shutil.which("perl")
    if perl is None:
        pytest.skip("perl (for an independent Default_Ignorable_Code_Point table) is not installed")
    script = ('for my $c (0..0x10FFFF) { next if $c >= 0xD800 && $c <= 0xDFFF; '
              'print "$c\\n" if chr($c) =~ /\\p{Default_Ignorable_Code_Point}/ }')
    output = subprocess.run([perl, "-e", script], capture_output=True, text=True, check=True).stdout
    return {chr(int(line)) for line in output.split()}


def test_every_hidden_character_is_refused_anywhere_in_a_name():
    expected_hidden = in_categories(*HIDDEN_CATEGORIES)
    assert len(expected_hidden) > 800_000  # unassigned and private-use code points are most of Unicode
    for char in expected_hidden:
        assert text.name_problem(f"an{char}n") is not None, f"U+{ord(char):04X}"
    for char in expected_hidden[::97]:
        for name in (char, f"ann{char}", f"{char}ann"):
            assert text.name_problem(name) is not None, f"U+{ord(char):04X} in {ascii(name)}"


def test_every_character_that_splits_a_line_is_refused_and_escaped():
    splitters = [chr(code) for code in range(sys.maxunicode + 1) if splits_a_line(chr(code))]
    assert {"\n", "\r", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029"} <= set(splitters)
    for char in splitters:
        assert text.name_problem(f"ann{char}bob: 100") is not None
        assert len(text.one_line(f"ann{char}bob").splitlines()) == 1


def test_every_default_ignorable_character_is_refused_anywhere():
    ignorable = default_ignorable_from_perl()
    assert "\u200b" in ignorable and "\u3164" in ignorable
    for char in sorted(ignorable):
        assert text.name_problem(char) is not None and text.name_problem(f"an{char}n") is not None, f"U+{ord(char):04X}"


def test_a_name_of_only_spaces_marks_or_invisible_characters_is_refused():
    spaces = in_categories("Zs")
    marks = in_categories("Mn", "Mc", "Me")
    blanks = [*spaces, "".join(spaces), *marks[:500], "".join(marks[:60]), *KNOWN_INVISIBLE, "".join(KNOWN_INVISIBLE)]
    for name in blanks:
        assert text.name_problem(name) is not None, ascii(name)


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_ordinary_names_are_accepted(name):
    assert text.name_problem(name) is None


def test_the_server_applies_the_rule_and_stores_nothing_it_refuses(tmp_path):
    database = tmp_path / "listening.sqlite"
    client = fastapi_testclient.TestClient(create_app(in_memory_stimuli(2), database))
    refused = [*(in_categories(c)[-1] for c in sorted(HIDDEN_CATEGORIES - {"Cs"})), *KNOWN_INVISIBLE,
               "ann\u2028bob", "ann\u2029bob", "ann\nbob: 100", "\u200b", " ", "\u3000", "\u0301", "x" * 81, ""]
    for name in refused:
        response = client.post("/api/sessions", json={"rater": name})
        assert response.status_code == 422, ascii(name)
        assert response.json()["detail"].startswith("rater: ")
    lone_surrogate = client.post("/api/sessions", content='{"rater": "ann\\ud800"}',
                                 headers={"Content-Type": "application/json"})
    assert lone_surrogate.status_code == 422
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 0
    for name in GOOD_NAMES:
        assert client.post("/api/sessions", json={"rater": name}).status_code == 200, name
    with sqlite3.connect(database) as connection:
        stored = [row[0] for row in connection.execute("SELECT rater FROM sessions ORDER BY rowid")]
    assert stored == [name.strip() for name in GOOD_NAMES]


def test_the_refusal_names_the_character(tmp_path):
    client = fastapi_testclient.TestClient(create_app(in_memory_stimuli(1), tmp_path / "listening.sqlite"))
    detail = client.post("/api/sessions", json={"rater": "ann\u2028bob"}).json()["detail"]
    assert "U+2028 (LINE SEPARATOR)" in detail and "\u2028" not in detail


# -- every text field of the results stays on its line ----------------------------------------------

HOSTILE = ["ann\u2028bob: 100", "ann\nbob", "x\u202eevil", "\u200b", "tab\there", "cr\rhere", "nel\x85here",
           "tag\U000e0041", "lone\ud800"]


def test_every_text_field_of_the_results_is_one_line_whatever_it_holds():
    """Names stored before the rule (or clip and loss names from a run) cannot split or hide a line."""
    ratings, preferences = [], []
    for index, hostile in enumerate(HOSTILE):
        session = f"{index:032x}"
        for condition, score in [(REFERENCE, 10), (f"loss{hostile}", 50)]:  # the reference missed: dropped
            ratings.append({"session": session, "rater": hostile, "checkpoint": 2, "clip": f"clip{hostile}",
                            "condition": condition, "score": score})
        preferences.append({"session": session, "rater": hostile, "checkpoint": 2, "clip": f"clip{hostile}",
                            "preferred": "mse", "other": f"loss{hostile}"})
    summary = results.results_text(ratings, preferences)
    lines = summary.split("\n")
    assert summary.splitlines() == lines  # no line splits anywhere but at "\n"
    assert not any(text.is_hidden(char) for char in summary.replace("\n", ""))
    summary.encode("utf-8")  # writable as listening.txt
    mushra_clip_lines = [line for line in lines if line.startswith("clip")]
    assert len(mushra_clip_lines) == len(HOSTILE)
    assert "dropped by post-screening" in lines[0] and lines[0].count("ann\\u2028bob: 100") == 1


def test_the_plot_shows_any_condition_name_literally(tmp_path):
    conditions = ["a$b$c", r"$\frac{$", "x\u2028y", *[f"loss-{i}" for i in range(30)]]
    estimate = results.mean_interval([50.0, 60.0])
    table = {results.ALL_CLIPS: {c: estimate for c in conditions}, "clip$1$": {c: estimate for c in conditions}}
    results.save_mushra_plot(table, conditions, results.ALL_CLIPS, tmp_path / "plot.png", "title")
    width, height = png_size(tmp_path / "plot.png")
    assert width < 1500  # 33 conditions: no wider than a page


def png_size(path):
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
