import shutil

import pytest
import soundfile


@pytest.fixture
def write_audio(tmp_path):
    """Write a test signal: ``write_audio(name, samples, rate, subtype=None)`` -> path."""

    def write(name, samples, rate=22050, subtype=None, format=None):
        path = tmp_path / name
        soundfile.write(str(path), samples, rate, subtype=subtype, format=format)
        return path

    return write


@pytest.fixture(scope="session")
def listening_run(tmp_path_factory):
    """A finished two-clip, two-loss run (2 iterations) for the listening test to serve."""
    from pal.cli import main

    out = tmp_path_factory.mktemp("listen") / "run"
    assert main(["run", "speech", "drums", "--losses", "mse,perceptual", "--iterations", "2",
                 "--checkpoint-every", "1", "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.fixture
def run(listening_run, tmp_path):
    """A copy of :func:`listening_run` that a test may damage."""
    copy = tmp_path / "run"
    shutil.copytree(listening_run, copy)
    return copy


@pytest.fixture
def stop_after_saving(monkeypatch):
    """``stop_after_saving(i)``: the next ``pal run`` in this process is interrupted (as by Ctrl-C)
    right after it saves its training state at iteration ``i``; later runs save as usual."""
    import pal.run.folder as runfolder

    original_save = runfolder.save_state

    def arm(iteration: int) -> None:
        def save_then_die(path, state):
            original_save(path, state)
            if state["iteration"] == iteration:
                monkeypatch.setattr(runfolder, "save_state", original_save)
                raise KeyboardInterrupt

        monkeypatch.setattr(runfolder, "save_state", save_then_die)

    return arm
