"""``pal bench --codec``: a training step per loss, its time against MR-STFT's, its operations."""

import json

import pytest

from pal.bench import main as bench_main
from pal.bench.codec import REFERENCE, codec_losses


def test_every_codec_loss_but_the_decoding_one():
    losses = codec_losses()
    assert "mulaw" not in losses and {"mse", "mrstft", "auditory", "perceptual", "dac-mel"} <= set(losses)


def test_the_table_and_its_ratios(tmp_path, capsys):
    out = tmp_path / "codec.json"
    assert bench_main(["--codec", "--losses", "mse", "--repeats", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())["codec"]["losses"]
    assert set(report) == {"mse", REFERENCE}  # MR-STFT joins as the denominator
    assert report[REFERENCE]["against_mrstft"] == 1.0
    assert report["mse"]["against_mrstft"] == report["mse"]["seconds"] / report[REFERENCE]["seconds"]
    # MR-STFT's step holds every operation of MSE's model and more for its six resolutions
    assert report[REFERENCE]["ops"] > report["mse"]["ops"] > 100
    assert "| mse |" in printed and "x MR-STFT's" in printed


def test_an_unknown_loss_is_refused(capsys):
    with pytest.raises(SystemExit) as exit:
        bench_main(["--codec", "--losses", "mulaw"])
    assert exit.value.code == 2 and "mulaw" in capsys.readouterr().err
