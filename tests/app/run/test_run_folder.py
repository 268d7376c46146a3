"""The run folder and the sweep folder each have one owner: every file name they hold is spelled
in exactly one module of the application (pal.run.folder, pal.run.sweep_folder, the listening store)."""

from pathlib import Path

import pytest

from pal.run import folder as runfolder
from pal.listening import store
from pal.run import sweep_folder as sweepfolder

PACKAGE = Path(runfolder.__file__).parents[1]
RUN_FILES = [runfolder.CONFIG, runfolder.RUNS, runfolder.METRICS, runfolder.STATE, runfolder.PAGE,
             runfolder.LISTENING_SUMMARY, runfolder.LISTENING_IMAGE,
             runfolder.ORIGINAL, runfolder.PEAKS, runfolder.LOSSES, *runfolder.CLIP_IMAGES.values(),
             runfolder.ERROR_IMAGE_SUFFIX, runfolder.checkpoint_name(250)[:5], "seed-"]
SWEEP_FILES = [sweepfolder.SWEEP_FILE, sweepfolder.TARGETS_FILE, sweepfolder.DONE_FILE, sweepfolder.SWEEP_PAGE]


def modules_spelling(name: str) -> list[str]:
    sources = [*PACKAGE.rglob("*.py"), *PACKAGE.rglob("*.html")]
    return sorted(str(p.relative_to(PACKAGE)) for p in sources if name in p.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", RUN_FILES)
def test_a_run_folder_name_is_spelled_only_in_runfolder(name):
    assert modules_spelling(name) == ["run/folder.py"]


@pytest.mark.parametrize("name", SWEEP_FILES)
def test_a_sweep_folder_name_is_spelled_only_in_sweepfolder(name):
    assert modules_spelling(name) == ["run/sweep_folder.py"]


def test_the_ratings_file_is_spelled_only_in_the_store():
    assert modules_spelling(store.FILE_NAME) == ["listening/store.py"]


def test_the_folder_paths_compose_as_documented(tmp_path):
    folder = runfolder.RunFolder(tmp_path)
    assert folder.checkpoint("speech", "mse", 2, 250) == tmp_path / "clips/speech/mse/seed-2/iter-0250.wav"
    assert folder.relative(folder.clip_image("speech", "mask")) == "clips/speech/mask.png"
    assert folder.checkpoint_image("speech", "mse", 2, 250) == tmp_path / "clips/speech/mse/seed-2/iter-0250.png"
    assert folder.checkpoint_image("speech", "mse", 2, 250, error=True) == \
        tmp_path / "clips/speech/mse/seed-2/iter-0250-error.png"
    assert runfolder.checkpoint_iteration(folder.checkpoint("a", "b", 0, 1000)) == 1000


def test_run_records_read_back_as_typed_values_old_and_new(tmp_path):
    folder = runfolder.RunFolder(tmp_path)
    statuses = [runfolder.RunStatus("speech", "mse", 1, "failed", "loss became nan at iteration 4", 4, 0.5, 2.0, [2])]
    folder.write_runs(statuses)
    assert folder.read_runs() == statuses
    # a folder from before seeds and typed outcomes: its records lack those keys
    folder.runs.write_text('[{"clip": "drums", "loss": "perceptual", "status": "finished", "final_loss": -0.9}]')
    (old,) = folder.read_runs()
    assert old.key == ("drums", "perceptual", 0) and old.status == "finished" and old.stopped_at is None


def test_a_damaged_run_record_is_named(tmp_path):
    from pal.core.errors import UserError

    folder = runfolder.RunFolder(tmp_path)
    folder.runs.write_text('{"not": "a list"}')
    with pytest.raises(UserError, match="runs.json: damaged run record"):
        folder.read_runs()
    folder.runs.write_text("[1, 2")
    with pytest.raises(UserError, match=r"runs.json: damaged run record \(not JSON"):
        folder.read_runs()


def test_the_run_configuration_reads_back_typed_old_and_new(tmp_path):
    import json

    from pal.core.errors import UserError

    folder = runfolder.RunFolder(tmp_path)
    record = {"losses": ["mse", "perceptual"], "iterations": 1000, "checkpoint_every": 300, "sample_rate": 11025,
              "window": 8192, "clip_names": ["speech"], "clip_sources": {"speech": "built-in clip 'speech'"},
              "a_key_from_a_later_version": 1}
    folder.config.write_text(json.dumps(record))  # a folder from before seeds were recorded
    config = folder.read_config()
    assert config.seeds == [0] and config.losses == ["mse", "perceptual"]
    assert config.checkpoints() == [300, 600, 900, 1000]  # every 300, and the last
    assert config.source("speech") == "built-in clip 'speech'" and config.source("other") == "other"
    del record["losses"]
    folder.config.write_text(json.dumps(record))
    with pytest.raises(UserError, match="config.json: damaged run configuration"):
        folder.read_config()
