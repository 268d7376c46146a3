"""Finding audio and naming clips (pal.run.sources), shared by pal run and pal sweep."""

import json

import numpy as np
import soundfile

from pal.run.sources import audio_under, is_output_folder, unique_names
from pal.run.experiment import expand_sources
from pal.sweeps.plan import find_audio


def write_tone(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, 0.1 * np.sin(np.arange(4000) / 5.0), 11025)


def test_a_run_or_sweep_folder_inside_a_data_folder_is_not_read_as_clips(tmp_path):
    data = tmp_path / "data"
    write_tone(data / "a.wav")
    write_tone(data / "sub" / "b.flac")
    run = data / "runs" / "demo"  # pal run --out data/runs/demo
    write_tone(run / "clips" / "a" / "original.wav")
    (run / "config.json").write_text("{}")
    (run / "runs.json").write_text("[]")
    sweep = data / "sweep"
    write_tone(sweep / "shard-0000" / "clips" / "a" / "original.wav")
    (sweep / "sweep.json").write_text(json.dumps({}))
    (data / "notes.txt").write_text("not audio")
    expected = [data / "a.wav", data / "sub" / "b.flac"]
    assert audio_under(data) == expected
    assert expand_sources([str(data)]) == [str(p) for p in expected]
    assert find_audio([str(data)]) == [p.resolve() for p in expected]
    assert is_output_folder(run) and is_output_folder(sweep) and not is_output_folder(data)


def test_a_folder_with_only_one_of_the_run_records_is_still_data(tmp_path):
    write_tone(tmp_path / "take" / "x.wav")
    (tmp_path / "take" / "config.json").write_text("{}")  # a user's own config file
    assert audio_under(tmp_path) == [tmp_path / "take" / "x.wav"]


def test_unique_names_number_repeats_without_clashing():
    assert unique_names(["a", "b", "a", "a-2", "a"]) == ["a", "b", "a-2", "a-2-2", "a-3"]
