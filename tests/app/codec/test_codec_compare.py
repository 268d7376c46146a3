"""``pal compare`` on codec folders: the cells are the groups' means read by hand from metrics.csv."""

import csv
import re

import pytest

from codec_corpus import quick_args, small_corpus
from pal.cli import main


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    train, test = small_corpus(root / "corpus")
    out = root / "run"
    assert main(quick_args(train, test, out, "--seeds", "0,1")) == 0
    return out


def by_hand(folder, group, loss, data, metric):
    """The mean over seeds of the group's mean over files at the last step (6), from the CSV."""
    per_seed = {}
    with open(folder / "metrics.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if (row["group"], row["loss"], row["train_seconds"], row["metric"], row["step"]) == (group, loss, data,
                                                                                                 metric, "6"):
                per_seed.setdefault(row["seed"], []).append(float(row["value"]))
    means = [sum(v) / len(v) for v in per_seed.values()]
    return sum(means) / len(means)


def test_the_cells_are_the_groups_means(two_seeds, capsys):
    assert main(["compare", str(two_seeds)]) == 0
    text = capsys.readouterr().out
    section = text.split("### multi-resolution STFT distance")[1].split("###")[0]
    header = next(line for line in section.splitlines() if line.startswith("| group"))
    columns = [c.strip() for c in header.strip("|").split("|")][1:]
    assert columns == ["mse w4 3s", "mrstft w4 3s", "mse w4 all", "mrstft w4 all"]
    music = next(line for line in section.splitlines() if line.startswith("| music"))
    cells = [c.strip() for c in music.strip("|").split("|")][1:]
    for label, cell in zip(columns, cells):
        loss, _, data = label.split()
        shown = float(re.match(r"\**([0-9.e+-]+)", cell).group(1))
        assert shown == pytest.approx(by_hand(two_seeds, "music", loss, data, "mrstft"), rel=5e-3)
        assert "±" in cell  # two seeds: an interval
    assert sum("**" in cell for cell in cells) == 1


def test_codec_and_run_folders_do_not_mix(two_seeds, listening_run, capsys):
    assert main(["compare", str(two_seeds), str(listening_run)]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["compare", str(two_seeds), "--at", "3"]) == 2
    assert "--at is for pal run folders" in capsys.readouterr().err
