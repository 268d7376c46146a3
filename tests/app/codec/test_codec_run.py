"""``pal codec`` end to end on a small corpus: the folder it writes, the same numbers from the same
seed, a resume that ends in the same bytes, and a model that learns."""

import json

import numpy as np
import pytest
import soundfile
import torch

from codec_corpus import quick_args, small_corpus
from pal.cli import main
from pal.codec.folder import CodecFolder
from pal.codec.model import CodecStack
from pal.codec.train import pad_to_hop


@pytest.fixture
def corpus(tmp_path):
    return small_corpus(tmp_path / "corpus")


def outputs(folder):
    """Every file pal codec wrote that holds numbers, by path, as bytes (the page and state aside),
    and the models' statuses without the seconds they took."""
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
             if p.suffix in (".wav", ".csv")}
    runs = [{k: v for k, v in status.items() if k != "seconds"}
            for status in json.loads((folder / "runs.json").read_text())]
    return files | {"runs.json": runs}


def test_the_folder_holds_every_model_file_and_measure(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(quick_args(*corpus, out)) == 0
    assert f"page: {out / 'report.html'}" in capsys.readouterr().out
    config, statuses, rows = CodecFolder(out).read_records()
    assert [s.status for s in statuses] == ["finished"] * 4  # 2 losses x 2 amounts of data
    assert config.data_seconds == {"3s": 3.0, "all": 8.0}
    assert config.latent_rate == 16000 / 320 * 2
    for status in statuses:
        assert status.checkpoints == [3, 6]
    files = {(r["file"], r["loss"], r["train_seconds"], r["step"]) for r in rows}
    assert len(files) == 2 * 4 * 2
    speech = {r["metric"] for r in rows if r["group"] == "speech"}
    music = {r["metric"] for r in rows if r["group"] == "music"}
    assert {"stoi", "pesq_wb", "mrstft"} <= speech and "stoi" not in music
    page = (out / "report.html").read_text()
    assert page.count('class="play"') == 2 * (1 + 4)  # each test file and its four decodes
    assert "latent values a second" in page


def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not(corpus, tmp_path):
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert main(quick_args(*corpus, first)) == 0
    assert main(quick_args(*corpus, second)) == 0
    assert main(quick_args(*corpus, other, "--seeds", "1")) == 0
    assert outputs(first) == outputs(second)
    assert (first / "metrics.csv").read_bytes() != (other / "metrics.csv").read_bytes()


def test_an_interrupted_run_resumes_to_the_same_bytes(corpus, tmp_path, capsys, monkeypatch):
    import pal.codec.folder as codec_folder

    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    assert main(quick_args(*corpus, straight)) == 0
    original_save = codec_folder.save_state

    def save_then_die(path, state):
        original_save(path, state)
        if state["step"] == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(codec_folder, "save_state", save_then_die)
    assert main(quick_args(*corpus, interrupted)) == 130
    assert json.loads((interrupted / "runs.json").read_text())[0]["status"] == "running"
    monkeypatch.setattr(codec_folder, "save_state", original_save)
    capsys.readouterr()
    assert main(quick_args(*corpus, interrupted)) == 0
    assert "resumed after step 3" in capsys.readouterr().out
    assert outputs(interrupted) == outputs(straight)
    assert main(quick_args(*corpus, interrupted)) == 0
    assert "already finished" in capsys.readouterr().out


def untrained_decode(samples: np.ndarray, width: int, bottleneck: int, seed: int = 0) -> np.ndarray:
    stack = CodecStack([seed], width, bottleneck)
    with torch.no_grad():
        decoded = stack(torch.from_numpy(pad_to_hop(samples.astype(np.float32)))[None, None])
    return decoded[0, 0, :len(samples)].numpy().astype(np.float64)


@pytest.mark.slow
def test_the_default_model_learns(corpus, tmp_path):
    """The default codec (width 16, bottleneck 8), trained briefly with MR-STFT, codes the unseen
    music file better than before training: MR-STFT distance down by a third, ViSQOL up by 0.5."""
    pytest.importorskip("visqol")
    from pal.measures.judges import visqol_score
    from pal.measures.formulas import multi_resolution_stft_distance

    out = tmp_path / "learns"
    assert main(["codec", "--train", str(corpus[0]), "--test", str(corpus[1]), "--out", str(out),
                 "--losses", "mrstft", "--train-seconds", "all", "--steps", "150", "--checkpoint-every", "150",
                 "--judges", "visqol", "--no-progress"]) == 0
    config, _, rows = CodecFolder(out).read_records()
    name = "music/beat-with-voice"
    original, _ = soundfile.read(str(CodecFolder(out).test_file(name)), dtype="float64")
    before = untrained_decode(original, 16, 8)
    trained = {r["metric"]: r["value"] for r in rows if r["file"] == name and r["step"] == 150}
    untrained_mrstft = multi_resolution_stft_distance(original, before)
    assert trained["mrstft"] < untrained_mrstft * 2 / 3
    assert trained["visqol"] > visqol_score(original, before, 16000) + 0.5
