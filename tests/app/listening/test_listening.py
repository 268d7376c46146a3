"""The listening test's stimuli, API and results, without a browser.

The browser end to end is in ``test_listening_browser.py``; here every refused request gets its
status and leaves the store as it was.
"""

import io
import math
import sqlite3

import numpy as np
import pytest
import soundfile
from scipy import signal, stats

from pal.cli import main
from pal.listening import results, store
from pal.listening.design import ANCHOR, REFERENCE, load_stimuli, low_pass_anchor

fastapi_testclient = pytest.importorskip("fastapi.testclient")
from pal.listening.server import create_app  # noqa: E402

LOSSES = ["mse", "perceptual"]


@pytest.fixture
def small_run(listening_run):
    return listening_run


@pytest.fixture
def run_copy(small_run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(small_run, copy)
    return copy


def client_for(run_dir, mode="mushra", **options):
    stimuli = load_stimuli(run_dir, mode, **options)
    return fastapi_testclient.TestClient(create_app(stimuli, store.database_path(run_dir)))


def stored_rows(run_dir):
    with sqlite3.connect(store.database_path(run_dir)) as connection:
        return {table: connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("ratings", "preferences", "plays", "sessions")}


def first_screen_played(client, rater="ann"):
    """A new session's first screen, every item played; and a body rating them all at ``score``."""
    created = client.post("/api/sessions", json={"rater": rater}).json()
    screen = created["screens"][0]
    play_all(client, created["session"], screen)
    return created, screen, lambda score: {"session": created["session"], "clip": screen["clip"],
                                           "scores": {i["token"]: score for i in screen["items"]}}


def play_all(client, session, screen):
    for item in screen["items"]:
        assert client.post("/api/played", json={"session": session, "token": item["token"]}).status_code == 204


# -- stimuli -------------------------------------------------------------------------------------


def test_the_anchor_is_the_reference_low_passed_at_3_5_khz():
    rate = 11025
    t = np.arange(rate) / rate
    reference = np.sin(2 * np.pi * 1000 * t) + np.sin(2 * np.pi * 4500 * t)
    anchor = low_pass_anchor(reference, rate)
    freqs, power = signal.periodogram(anchor[1000:-1000], rate)
    at = lambda hz: power[np.argmin(abs(freqs - hz))]  # noqa: E731
    assert 10 * np.log10(at(4500) / at(1000)) < -50  # stop band
    # Pass band: the 1 kHz sine goes through at its level and in phase (linear phase, no delay).
    np.testing.assert_allclose(anchor[2000:-2000], np.sin(2 * np.pi * 1000 * t)[2000:-2000], atol=0.01)


def test_stimuli_hold_the_reference_anchor_and_each_loss_level_matched(small_run):
    stimuli = load_stimuli(small_run)
    assert stimuli.checkpoint == 2 and [clip.name for clip in stimuli.clips] == ["speech", "drums"]
    clip = stimuli.clips[0]
    assert list(clip.conditions) == [REFERENCE, ANCHOR, *LOSSES]
    reference = soundfile.read(io.BytesIO(clip.reference))[0]
    rms = lambda x: np.sqrt(np.mean(x ** 2))  # noqa: E731
    for name, wav in clip.conditions.items():
        samples, rate = soundfile.read(io.BytesIO(wav))
        assert rate == 11025 and len(samples) == 8192 and np.abs(samples).max() <= 0.99 + 1e-6
        assert rms(samples) == pytest.approx(rms(reference), rel=1e-4)
    hidden = soundfile.read(io.BytesIO(clip.conditions[REFERENCE]))[0]
    np.testing.assert_array_equal(hidden, reference)


@pytest.mark.parametrize("arguments, message", [
    (["--checkpoint", "3"], "no checkpoint 3"),
    (["--mode", "abx"], "unknown mode"),
    (["--compare", "mse,l1"], "no loss 'l1'"),
    (["--mode", "preference", "--compare", "mse"], "exactly two"),
    (["--port", "70000"], "--port"),
])
def test_bad_listen_arguments_are_one_line(small_run, capsys, arguments, message):
    assert main(["listen", str(small_run), *arguments]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def test_a_taken_port_is_one_line(small_run, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["listen", str(small_run), "--port", str(port)]) == 2
    error = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in error and error.count("\n") == 1


# -- the API ---------------------------------------------------------------------------------------


def test_a_session_has_every_clip_with_shuffled_opaque_items(run_copy):
    client = client_for(run_copy)
    page = client.get("/")
    assert page.status_code == 200 and "Listening test" in page.text
    created = client.post("/api/sessions", json={"rater": "ann"}).json()
    assert {screen["clip"] for screen in created["screens"]} == {"speech", "drums"}
    for screen in created["screens"]:
        assert [item["label"] for item in screen["items"]] == ["A", "B", "C", "D"]
        for item in screen["items"]:
            assert len(item["token"]) == 32 and not any(name in item["url"] for name in (*LOSSES, "reference", "anchor"))
            sound = client.get(item["url"])
            assert sound.status_code == 200 and sound.headers["content-type"] == "audio/wav"
            assert soundfile.read(io.BytesIO(sound.content))[0].shape == (8192,)
        assert client.get(screen["reference"]).status_code == 200
    # The order is drawn per session: over 20 sessions, A is not always the same condition.
    with sqlite3.connect(store.database_path(run_copy)) as connection:
        for _ in range(20):
            client.post("/api/sessions", json={"rater": "x"})
        firsts = connection.execute("SELECT DISTINCT condition FROM items WHERE position = 0").fetchall()
    assert len(firsts) > 1


def test_a_complete_mushra_screen_is_stored(run_copy):
    client = client_for(run_copy)
    created = client.post("/api/sessions", json={"rater": "ann"}).json()
    screen = created["screens"][0]
    play_all(client, created["session"], screen)
    scores = {item["token"]: 10.0 * index for index, item in enumerate(screen["items"])}
    response = client.post("/api/ratings", json={"session": created["session"], "clip": screen["clip"], "scores": scores})
    assert response.status_code == 201
    rows = store.read_ratings(store.database_path(run_copy))
    assert len(rows) == 4 and {row["rater"] for row in rows} == {"ann"}
    assert sorted(row["score"] for row in rows) == [0.0, 10.0, 20.0, 30.0]
    assert {row["condition"] for row in rows} == {REFERENCE, ANCHOR, *LOSSES}


def refused_cases(session, screen, other_session):
    tokens = [item["token"] for item in screen["items"]]
    good = {token: 50 for token in tokens}
    clip = screen["clip"]
    return {
        "unknown clip": (422, {"session": session, "clip": "violin", "scores": good}),
        "unknown condition": (422, {"session": session, "clip": clip, "scores": {**good, "f" * 32: 50}}),
        "missing condition": (422, {"session": session, "clip": clip, "scores": dict(list(good.items())[1:])}),
        "score above 100": (422, {"session": session, "clip": clip, "scores": {**good, tokens[0]: 100.5}}),
        "score below 0": (422, {"session": session, "clip": clip, "scores": {**good, tokens[0]: -1}}),
        "score not a number": (422, {"session": session, "clip": clip, "scores": {**good, tokens[0]: "high"}}),
        "score a numeric string": (422, {"session": session, "clip": clip, "scores": {**good, tokens[0]: "50"}}),
        "score a boolean": (422, {"session": session, "clip": clip, "scores": {**good, tokens[0]: True}}),
        "score null": (422, {"session": session, "clip": clip, "scores": {**good, tokens[0]: None}}),
        "session a number": (422, {"session": 7, "clip": clip, "scores": good}),
        "score infinite": (422, '{"session": "%s", "clip": "%s", "scores": {"%s": Infinity}}' % (session, clip, tokens[0])),
        "unknown field": (422, {"session": session, "clip": clip, "scores": good, "admin": True}),
        "unknown session": (404, {"session": "0" * 32, "clip": clip, "scores": good}),
        "another session's items": (422, {"session": other_session, "clip": clip, "scores": good}),
    }


def test_every_bad_rating_is_refused_and_nothing_is_stored(run_copy):
    client = client_for(run_copy)
    first = client.post("/api/sessions", json={"rater": "ann"}).json()
    other = client.post("/api/sessions", json={"rater": "bob"}).json()
    screen = first["screens"][0]
    play_all(client, first["session"], screen)
    play_all(client, other["session"], next(s for s in other["screens"] if s["clip"] == screen["clip"]))
    for name, (status, body) in refused_cases(first["session"], screen, other["session"]).items():
        if isinstance(body, str):
            response = client.post("/api/ratings", content=body, headers={"Content-Type": "application/json"})
        else:
            response = client.post("/api/ratings", json=body)
        assert response.status_code == status, name
        assert stored_rows(run_copy)["ratings"] == 0, name


def test_rating_before_playing_every_item_is_refused(run_copy):
    client = client_for(run_copy)
    created = client.post("/api/sessions", json={"rater": "ann"}).json()
    screen = created["screens"][0]
    for item in screen["items"][:-1]:
        client.post("/api/played", json={"session": created["session"], "token": item["token"]})
    body = {"session": created["session"], "clip": screen["clip"], "scores": {i["token"]: 50 for i in screen["items"]}}
    response = client.post("/api/ratings", json=body)
    assert response.status_code == 409 and "play every item" in response.json()["detail"]
    assert stored_rows(run_copy)["ratings"] == 0


def test_a_duplicate_submission_is_refused_and_the_first_kept(run_copy):
    client = client_for(run_copy)
    _, _, rating_all = first_screen_played(client)
    body = rating_all(70)
    assert client.post("/api/ratings", json=body).status_code == 201
    again = {**body, "scores": {token: 5 for token in body["scores"]}}
    assert client.post("/api/ratings", json=again).status_code == 409
    assert {row["score"] for row in store.read_ratings(store.database_path(run_copy))} == {70.0}


@pytest.mark.parametrize("path", [
    "/audio/../config.json", "/audio/..%2Fconfig.json", "/audio/%2Fetc%2Fpasswd", "/audio//etc/passwd",
    "/audio/" + "0" * 32, "/audio/clips/speech/original.wav", "/config.json", "/listening.sqlite",
    "/clips/speech/original.wav", "/static/../config.json",
])
def test_no_request_reaches_the_file_system(run_copy, path):
    client = client_for(run_copy)
    response = client.get(path)
    assert response.status_code in (400, 404, 405), path
    assert b"RIFF" not in response.content and b"clip_names" not in response.content


def test_played_refuses_items_of_other_sessions(run_copy):
    client = client_for(run_copy)
    first = client.post("/api/sessions", json={"rater": "ann"}).json()
    other = client.post("/api/sessions", json={"rater": "bob"}).json()
    token = other["screens"][0]["items"][0]["token"]
    assert client.post("/api/played", json={"session": first["session"], "token": token}).status_code == 404
    assert client.post("/api/sessions", json={"rater": "   "}).status_code == 422
    assert client.post("/api/sessions", json={"rater": "x" * 81}).status_code == 422
    assert stored_rows(run_copy)["plays"] == 0


def test_preference_mode_stores_a_forced_choice(run_copy):
    client = client_for(run_copy, "preference")
    created = client.post("/api/sessions", json={"rater": "cat"}).json()
    screen = created["screens"][0]
    assert len(screen["items"]) == 2
    session = created["session"]
    assert client.post("/api/preferences", json={"session": session, "clip": screen["clip"],
                                                 "preferred": screen["items"][0]["token"]}).status_code == 409
    play_all(client, session, screen)
    assert client.post("/api/preferences", json={"session": session, "clip": screen["clip"],
                                                 "preferred": "e" * 32}).status_code == 422
    assert client.post("/api/ratings", json={"session": session, "clip": screen["clip"], "scores": {}}).status_code == 409
    assert client.post("/api/preferences", json={"session": session, "clip": screen["clip"],
                                                 "preferred": screen["items"][1]["token"]}).status_code == 201
    (row,) = store.read_preferences(store.database_path(run_copy))
    assert {row["preferred"], row["other"]} == set(LOSSES)
    text = results.results_text(*results.read_results(run_copy))
    assert text.startswith("preference, iteration 2:")
    counts = {row["preferred"]: 1, row["other"]: 0}
    assert f"{screen['clip']}: mse {counts['mse']}, perceptual {counts['perceptual']}" in text


def test_ratings_survive_a_new_server_on_the_same_folder(run_copy):
    client = client_for(run_copy)
    _, _, rating_all = first_screen_played(client)
    body = rating_all(80)
    assert client.post("/api/ratings", json=body).status_code == 201
    restarted = client_for(run_copy)
    assert restarted.post("/api/ratings", json=body).status_code == 409  # it knows the session
    assert len(store.read_ratings(store.database_path(run_copy))) == 4


# -- results ---------------------------------------------------------------------------------------


def rating(session, clip, condition, score, rater=None):
    return {"session": session, "rater": rater or session, "checkpoint": 2, "clip": clip,
            "condition": condition, "score": score}


def test_post_screening_drops_raters_who_miss_the_hidden_reference_too_often():
    clips = [f"c{i}" for i in range(10)]
    ratings = []
    for clip_index, clip in enumerate(clips):
        ratings.append(rating("keen", clip, REFERENCE, 100))
        ratings.append(rating("one-slip", clip, REFERENCE, 85 if clip_index == 0 else 95))  # 10 %: kept
        ratings.append(rating("careless", clip, REFERENCE, 85 if clip_index < 2 else 95))  # 20 %: dropped
        for session in ("keen", "one-slip", "careless"):
            ratings.append(rating(session, clip, "mse", 40 + clip_index))
    assert results.failed_post_screening(ratings) == {"careless"}
    summary = results.summarise_mushra(ratings)
    assert summary.raters == 3 and len(summary.dropped) == 1 and summary.dropped[0].startswith("careless")
    mse_scores = [40 + i for i in range(10)] * 2
    overall = summary.table[results.ALL_CLIPS]["mse"]
    assert overall.n == 20 and overall.mean == pytest.approx(np.mean(mse_scores))
    expected = stats.t.ppf(0.975, 19) * np.std(mse_scores, ddof=1) / math.sqrt(20)
    assert overall.half_width == pytest.approx(expected)
    assert summary.table["c3"]["mse"].mean == 43 and summary.table["c3"]["mse"].n == 2


def test_preference_share_interval_and_binomial_test_by_hand():
    row = results.PreferenceRow("all clips", "mse", "perceptual", 3, 17)
    share, low, high = row.share_interval()
    assert share == 0.15
    # Wilson interval for 3 of 20, z = 1.959964: (0.0524, 0.3604) (Newcombe 1998, method 3).
    assert (low, high) == pytest.approx((0.0524, 0.3604), abs=5e-4)
    assert row.p_value() == pytest.approx(2 * sum(math.comb(20, k) for k in range(4)) / 2 ** 20)


@pytest.mark.slow
def test_results_command_reports_ratings_and_adds_them_to_the_page(run_copy, capsys):
    assert main(["listen", str(run_copy), "--results"]) == 0
    assert "no ratings yet" in capsys.readouterr().out
    client = client_for(run_copy)
    for rater in ("ann", "bob"):
        created = client.post("/api/sessions", json={"rater": rater}).json()
        for screen in created["screens"]:
            play_all(client, created["session"], screen)
            client.post("/api/ratings", json={"session": created["session"], "clip": screen["clip"],
                                              "scores": {i["token"]: 95 for i in screen["items"]}})
    assert main(["listen", str(run_copy), "--results"]) == 0
    out = capsys.readouterr().out
    assert "2 rater(s); 0 dropped" in out and "95.0" in out and "n = 4" in out
    page = (run_copy / "report.html").read_text()
    assert 'id="listening"' in page and (run_copy / "listening.png").is_file()


@pytest.mark.parametrize("rater", ["", "   ", "a" * 81, "ann\nbob: 100", "tab\there", "x\u202ey", "x\u2066y", "bell\x07",
                                   7, True, None])
def test_a_rater_name_that_could_forge_or_reorder_results_is_refused(run_copy, rater):
    client = client_for(run_copy)
    response = client.post("/api/sessions", json={"rater": rater})
    assert response.status_code == 422
    assert stored_rows(run_copy)["sessions"] == 0


def test_a_preference_test_of_a_loss_against_itself_is_refused(run_copy, capsys):
    from pal.cli import main

    assert main(["listen", str(run_copy), "--mode", "preference", "--compare", "mse,mse"]) == 2
    assert "names a loss twice" in capsys.readouterr().err


@pytest.mark.parametrize("host", ["", "  "])
def test_an_empty_host_is_refused_not_bound_to_every_interface(run_copy, host, capsys):
    from pal.cli import main

    assert main(["listen", str(run_copy), "--host", host]) == 2
    assert "--host is empty" in capsys.readouterr().err


def test_a_store_of_an_earlier_version_is_read_and_gains_the_setting_columns(tmp_path):
    """Sessions written before a session recorded a codec run's width and data: read as a run's."""
    database = tmp_path / "listening.sqlite"
    with sqlite3.connect(database) as connection:
        connection.executescript(
            "CREATE TABLE sessions (id TEXT PRIMARY KEY, rater TEXT NOT NULL, mode TEXT NOT NULL, "
            "checkpoint INTEGER NOT NULL, created TEXT NOT NULL);"
            "CREATE TABLE ratings (session TEXT NOT NULL, clip TEXT NOT NULL, condition TEXT NOT NULL, "
            "score REAL NOT NULL, submitted TEXT NOT NULL, PRIMARY KEY (session, clip, condition));"
            "INSERT INTO sessions VALUES ('s1', 'ann', 'mushra', 2, '2024-01-01T00:00:00+00:00');"
            "INSERT INTO ratings VALUES ('s1', 'drums', 'mse', 70, '2024-01-01T00:00:00+00:00');")
    expected = [{"session": "s1", "rater": "ann", "checkpoint": 2, "width": None, "train_seconds": None,
                 "clip": "drums", "condition": "mse", "score": 70.0}]
    assert store.read_ratings(database) == expected  # before a server opened it
    store.create(database)
    with sqlite3.connect(database) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(sessions)")]
    assert columns[-2:] == ["width", "train_seconds"]
    assert store.read_ratings(database) == expected
    store.add_session(database, "s2", "bob", "mushra", 6, [], 16, "all")
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT width, train_seconds FROM sessions WHERE id = 's2'").fetchone() == (16, "all")
    assert results.results_text(expected, []).startswith("MUSHRA, iteration 2:")
