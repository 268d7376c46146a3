"""A disk that fills up at each kind of file pal writes: one line, exit 2, nothing lost.

Each case mounts a small tmpfs, runs the real command in this process, and right before the write
of interest fills the tmpfs with a filler file, leaving fewer bytes than that file needs: exactly
that write fails, partway. Then:

- the command exits 2 with one line on stderr, ``pal: error:``, naming the folder and the file,
  and no traceback;
- every file already written is byte for byte what it was just before the failing write, and no
  temporary is left beside it;
- with the space freed, the same command finishes (a run resumes from its saved state).

Mounting needs root, or a user namespace where the test runs as root: as another user, run
``unshare --user --map-root-user --mount .venv/bin/python -m pytest tests/app/test_full_disk.py``.
"""

import os
import shutil
import socket
import subprocess
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
import soundfile

import pal.core.files
from pal.cli import main
from pal.listening import store
from pal.core.locks import LOCK_FILE

from helpers import sine

DISK_SIZE = 32 * 2**20  # a tiny run folder holds about 2 MB, its state 1.6 MB of it
PAGE = 4096  # tmpfs allocates whole pages


class SmallDisk:
    """A mounted tmpfs, and a filler file that leaves it a chosen number of bytes."""

    def __init__(self, root: Path):
        self.root = root
        self.filler = root / "filler"

    def free_bytes(self) -> int:
        stats = os.statvfs(self.root)
        return stats.f_bavail * stats.f_frsize

    def fill(self, leave: int) -> None:
        """Grow the filler until ``leave`` bytes (a multiple of a page) are free."""
        with open(self.filler, "ab", buffering=0) as handle:
            handle.write(bytes(self.free_bytes() - leave))
        assert self.free_bytes() == leave

    def release(self) -> None:
        self.filler.unlink(missing_ok=True)


def _tmpfs_unavailable(root: Path) -> str | None:
    """Why no tmpfs can be mounted here, or ``None`` once one is mounted at ``root``."""
    if os.geteuid() != 0:
        try:
            namespaces = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"],
                                        capture_output=True).returncode == 0
        except FileNotFoundError:
            namespaces = False
        if namespaces:
            return ("mounting a tmpfs needs root; this machine has user namespaces, so run: unshare --user "
                    "--map-root-user --mount .venv/bin/python -m pytest tests/app/test_full_disk.py")
        return "mounting a tmpfs needs root, and this machine allows no user namespaces (unshare failed)"
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(root)],
                                 capture_output=True, text=True)
    except FileNotFoundError:
        return "no mount command here"
    return None if mounted.returncode == 0 else f"cannot mount a tmpfs here: {mounted.stderr.strip()}"


@pytest.fixture
def small_disk(tmp_path):
    root = tmp_path / "disk"
    root.mkdir()
    reason = _tmpfs_unavailable(root)
    if reason:
        pytest.skip(reason)
    try:
        yield SmallDisk(root)
    finally:
        subprocess.run(["umount", "--lazy", str(root)], check=False)


def files_of(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, the lock aside (it means nothing once let go)."""
    if not folder.is_dir():
        return {}
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file() and path.name != LOCK_FILE}


class FillBefore:
    """Fill ``disk`` right before the first atomic write whose destination ``chosen(path, n)``
    picks (``n``: how many times a file of that name has been written), keeping what ``folder``
    held at that moment."""

    def __init__(self, monkeypatch, disk: SmallDisk, folder: Path, chosen, leave: int):
        self.path: Path | None = None
        self.before: dict[str, bytes] = {}
        original, seen = pal.core.files.atomic_path, Counter()

        @contextmanager
        def watched(path):
            path = Path(path)
            seen[path.name] += 1
            if self.path is None and chosen(path, seen[path.name]):
                self.path, self.before = path, files_of(folder)
                disk.fill(leave)
            with original(path) as temporary:
                yield temporary

        monkeypatch.setattr(pal.core.files, "atomic_path", watched)
        self.undo = lambda: monkeypatch.setattr(pal.core.files, "atomic_path", original)


def assert_one_line_naming(err: str, *names) -> None:
    assert err.startswith("pal: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for name in names:
        assert str(name) in err, (name, err)


@pytest.fixture
def tone(tmp_path):
    path = tmp_path / "tone.wav"
    soundfile.write(str(path), sine(440, 1.0, 11025), 11025)
    return path


def run_command(tone: Path, out: Path) -> list[str]:
    return ["run", str(tone), "--losses", "mse", "--iterations", "4", "--checkpoint-every", "2", "--no-progress",
            "--out", str(out)]


# (file picked, bytes left free, what the same command does once space is freed). The state is
# saved at iterations 2 and 4; runs.json is written at the start and, with the outcome, at the end.
RUN_WRITES = {
    "training state": (lambda path, n: path.name == "state.pt" and n == 2, PAGE, "resumed after iteration 2"),
    "checkpoint wav": (lambda path, n: path.name == "iter-0004.wav", PAGE, "resumed after iteration 2"),
    "run record": (lambda path, n: path.name == "runs.json" and n == 2, 0, "resumed after iteration 4"),
    "image": (lambda path, n: path.suffix == ".png", 0, "page rebuilt"),
    "page": (lambda path, n: path.name == "report.html", PAGE, "page rebuilt"),
    "configuration": (lambda path, n: path.name == "config.json", 0, ""),
}


@pytest.mark.parametrize("kind", RUN_WRITES)
def test_pal_run_on_a_full_disk_is_one_line_keeps_what_it_wrote_and_finishes_later(
        kind, small_disk, tone, monkeypatch, capsys):
    chosen, leave, then = RUN_WRITES[kind]
    out = small_disk.root / "run"
    fill = FillBefore(monkeypatch, small_disk, out, chosen, leave)
    assert main(run_command(tone, out)) == 2
    err = capsys.readouterr().err
    assert fill.path is not None, "the write of interest never came"
    assert_one_line_naming(err, out, fill.path.name)
    assert files_of(out) == fill.before  # nothing already written changed; no temporary left
    if kind == "configuration":
        assert not out.exists()  # a folder this command created is not left half made
    fill.undo()
    small_disk.release()
    assert main(run_command(tone, out)) == 0
    assert then in capsys.readouterr().out
    assert len(fill.path.read_bytes()) > leave  # the file needed more than was left: it failed partway
    assert '"status": "finished"' in (out / "runs.json").read_text()


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_a_disk_full_from_the_start_is_one_line_and_leaves_no_folder(command, small_disk, tone, capsys):
    out = small_disk.root / "out"
    small_disk.fill(0)
    argv = run_command(tone, out) if command == "run" else ["sweep", str(tone), "--out", str(out), "--no-progress"]
    assert main(argv) == 2
    assert_one_line_naming(capsys.readouterr().err, out, "No space left on device")
    assert not out.exists()


@pytest.fixture(scope="module")
def a_finished_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finished")
    tone = folder / "tone.wav"
    soundfile.write(str(tone), sine(440, 1.0, 11025), 11025)
    assert main(run_command(tone, folder / "run")) == 0
    return folder / "run"


@pytest.fixture
def finished_run(a_finished_run, small_disk):
    """A finished tiny run, copied onto the small disk."""
    return Path(shutil.copytree(a_finished_run, small_disk.root / "run"))


@pytest.mark.parametrize("chosen", [lambda path, n: path.suffix == ".png", lambda path, n: path.name == "report.html"],
                         ids=["image", "page"])
def test_pal_report_on_a_full_disk_is_one_line_and_loses_nothing(chosen, finished_run, small_disk, monkeypatch,
                                                                 capsys):
    capsys.readouterr()
    before = files_of(finished_run)
    fill = FillBefore(monkeypatch, small_disk, finished_run, chosen, 0)
    assert main(["report", str(finished_run)]) == 2
    err = capsys.readouterr().err
    assert_one_line_naming(err, finished_run, fill.path.name, "nothing in the run is lost")
    assert files_of(finished_run) == before
    fill.undo()
    small_disk.release()
    assert main(["report", str(finished_run)]) == 0


def test_a_sweep_plan_on_a_full_disk_is_one_line_and_leaves_nothing(small_disk, tone, monkeypatch, capsys):
    out = small_disk.root / "sweep"
    FillBefore(monkeypatch, small_disk, out, lambda path, n: path.name == "targets.npz", PAGE)
    assert main(["sweep", str(tone), "--out", str(out), "--losses", "mse", "--iterations", "2",
                 "--checkpoint-every", "1", "--no-progress"]) == 2
    assert_one_line_naming(capsys.readouterr().err, out, "targets.npz")
    assert not out.exists()


# -- the listening test's store ----------------------------------------------------------------


@pytest.fixture
def run_on_disk(listening_run, small_disk):
    """A copy of the finished two-clip run on the small disk, without ratings."""
    copy = small_disk.root / "run"
    shutil.copytree(listening_run, copy, ignore=shutil.ignore_patterns(f"{store.FILE_NAME}*", LOCK_FILE))
    return copy


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_listening_server_on_a_full_disk_says_so_in_one_line_at_start_up(run_on_disk, small_disk, monkeypatch,
                                                                            capsys):
    import uvicorn

    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.append(app))
    small_disk.fill(0)
    assert main(["listen", str(run_on_disk), "--port", str(free_port())]) == 2
    assert_one_line_naming(capsys.readouterr().err, store.database_path(run_on_disk), "the disk is full")
    assert not served
    small_disk.release()
    assert main(["listen", str(run_on_disk), "--port", str(free_port())]) == 0
    assert len(served) == 1


def play_and_score(client, session: str, screen: dict, score: float):
    for item in screen["items"]:
        assert client.post("/api/played", json={"session": session, "token": item["token"]}).status_code == 204
    return client.post("/api/ratings", json={"session": session, "clip": screen["clip"],
                                             "scores": {item["token"]: score for item in screen["items"]}})


# 0 bytes: SQLite cannot even map its WAL index; 9 pages: the index (8 pages) fits, the WAL does not.
@pytest.mark.parametrize("leave", [0, 9 * PAGE])
def test_a_rating_on_a_full_disk_is_refused_with_507_and_stored_ratings_stay(leave, run_on_disk, small_disk):
    testclient = pytest.importorskip("fastapi.testclient")
    from pal.listening.design import load_stimuli
    from pal.listening.server import create_app

    database = store.database_path(run_on_disk)
    client = testclient.TestClient(create_app(load_stimuli(run_on_disk), database))
    created = client.post("/api/sessions", json={"rater": "ann"}).json()
    session, (first, second) = created["session"], created["screens"]
    assert play_and_score(client, session, first, 80).status_code == 201
    for item in second["items"]:
        assert client.post("/api/played", json={"session": session, "token": item["token"]}).status_code == 204
    stored = store.read_ratings(database)
    assert len(stored) == len(first["items"])

    small_disk.fill(leave)
    rating = {"session": session, "clip": second["clip"], "scores": {item["token"]: 60 for item in second["items"]}}
    refused = client.post("/api/ratings", json=rating)
    assert refused.status_code == 507, refused.text
    assert "the disk is full" in refused.json()["detail"] and "already stored are kept" in refused.json()["detail"]

    small_disk.release()
    assert store.read_ratings(database) == stored
    assert client.post("/api/ratings", json=rating).status_code == 201
    assert len(store.read_ratings(database)) == len(stored) + len(second["items"])


def test_listening_results_on_a_full_disk_are_one_line_and_lose_nothing(run_on_disk, small_disk, monkeypatch,
                                                                        capsys):
    testclient = pytest.importorskip("fastapi.testclient")
    from pal.listening.design import load_stimuli
    from pal.listening.server import create_app

    client = testclient.TestClient(create_app(load_stimuli(run_on_disk), store.database_path(run_on_disk)))
    created = client.post("/api/sessions", json={"rater": "ann"}).json()
    assert play_and_score(client, created["session"], created["screens"][0], 90).status_code == 201
    fill = FillBefore(monkeypatch, small_disk, run_on_disk, lambda path, n: path.name == "listening.txt", 0)
    assert main(["listen", str(run_on_disk), "--results"]) == 2
    assert_one_line_naming(capsys.readouterr().err, run_on_disk, "listening.txt", "ratings and the run are kept")
    assert files_of(run_on_disk) == fill.before
    fill.undo()
    small_disk.release()
    assert main(["listen", str(run_on_disk), "--results"]) == 0
