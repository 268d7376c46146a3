"""``pal compare``: several run folders' measures side by side, checked against intervals worked
out by hand with scipy's Student t, the bold best and the apart mark placed by hand."""

import math
import re
import statistics

import pytest
from scipy import stats

from pal.cli import main
from pal.run.folder import RunFolder, write_json

SEEDS = [0, 1, 2]
# (folder, loss, clip, metric, iteration) -> one value per seed
VALUES = {
    ("a", "mse", "speech", "lsd_high_db", 500): [20.0, 21.0, 22.0],
    ("a", "perceptual", "speech", "lsd_high_db", 500): [15.0, 15.5, 16.0],
    ("b", "mse", "speech", "lsd_high_db", 500): [18.0, 25.0, 11.0],
    ("a", "mse", "drums", "lsd_high_db", 500): [14.0, 14.5, 15.0],
    ("a", "perceptual", "drums", "lsd_high_db", 500): [14.5, 15.0, 15.5],
    ("b", "mse", "drums", "lsd_high_db", 500): [9.0, 9.5, 10.0],
    ("a", "mse", "speech", "stoi", 500): [0.70, 0.72, 0.74],
    ("a", "perceptual", "speech", "stoi", 500): [0.80, 0.82, 0.84],
    ("b", "mse", "speech", "stoi", 500): [0.60, 0.75, 0.90],
    ("a", "mse", "speech", "cdpam", 500): [0.30, 0.31, 0.32],  # a judge only some runs ask for
    ("a", "perceptual", "speech", "cdpam", 500): [0.20, 0.21, 0.22],
    ("a", "mse", "speech", "lsd_high_db", 250): [30.0, 31.0, 32.0],
    ("a", "perceptual", "speech", "lsd_high_db", 250): [29.0, 30.0, 31.0],
    ("b", "mse", "speech", "lsd_high_db", 250): [28.0, 28.5, 29.0],
}


def make_folder(root, name, losses, identity):
    folder = RunFolder(root / name)
    folder.root.mkdir()
    write_json(folder.config, {"losses": losses, "iterations": 500, "checkpoint_every": 250, "sample_rate": 11025,
                               "window": 8192, "clip_names": ["speech", "drums"], "seeds": SEEDS,
                               "identity": identity | {"losses": losses, "seeds": SEEDS, "iterations": 500}})
    rows = [dict(clip=clip, loss=loss, seed=seed, iteration=iteration, metric=metric, value=value)
            for (where, loss, clip, metric, iteration), values in VALUES.items() if where == name
            for seed, value in zip(SEEDS, values)]
    folder.write_metrics(rows)
    return folder.root


@pytest.fixture
def folders(tmp_path):
    return (make_folder(tmp_path, "a", ["mse", "perceptual"], {}),
            make_folder(tmp_path, "b", ["mse"], {"width": 8}))


def by_hand(values):
    """Mean and 95 % Student-t half-width, as the cell shows them (3 and 2 significant figures)."""
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return f"{statistics.mean(values):.3g} ± {half:.2g}", statistics.mean(values), half


def table(out: str, title: str) -> dict[str, list[str]]:
    """The Markdown table under the heading starting with ``title``: its header and rows by first cell."""
    section = out.split(f"### {title}")[1].split("###")[0]
    lines = [line for line in section.splitlines() if line.startswith("|") and not line.startswith("|---")]
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines)}


def test_means_intervals_bold_and_apart_marks_by_hand(folders, capsys):
    assert main(["compare", *map(str, folders), "--focus", "perceptual"]) == 0
    out = capsys.readouterr().out
    rows = table(out, "high-band log-spectral distance (dB) at iteration 500")
    # The loss in both folders is told apart by the setting that differs; the other is its label.
    assert rows["clip"] == ["width=32: mse", "perceptual", "width=8: mse"]
    a_mse, a_mse_mean, a_mse_half = by_hand(VALUES[("a", "mse", "speech", "lsd_high_db", 500)])
    perceptual, p_mean, p_half = by_hand(VALUES[("a", "perceptual", "speech", "lsd_high_db", 500)])
    b_mse, b_mean, b_half = by_hand(VALUES[("b", "mse", "speech", "lsd_high_db", 500)])
    assert abs(a_mse_mean - p_mean) > a_mse_half + p_half and abs(b_mean - p_mean) < b_half + p_half
    # perceptual's 15.5 is the best; its interval clears a's MSE (apart), not b's (wide)
    assert rows["speech"] == [f"{a_mse} †", f"**{perceptual}**", b_mse]
    drums = {key: by_hand(VALUES[(where, loss, "drums", "lsd_high_db", 500)])[0]
             for key, (where, loss) in {"a": ("a", "mse"), "p": ("a", "perceptual"), "b": ("b", "mse")}.items()}
    # width=8's MSE, 9.5 ± 1.2, is the best on drums, apart from both others (14.5 ± 1.2, 15 ± 1.2)
    assert rows["drums"] == [f"{drums['a']} †", f"{drums['p']} †", f"**{drums['b']}**"]
    # perceptual: best on speech, beaten with intervals apart on drums by width=8's MSE
    section = out.split("### high-band log-spectral distance (dB) at iteration 500")[1].split("###")[0]
    assert ("perceptual: the best mean in 1 of 2 rows; beaten with intervals apart in 1: "
            "drums (by width=8: mse)") in section


def test_higher_is_better_and_stoi_only_on_the_clips_that_have_it(folders, capsys):
    assert main(["compare", *map(str, folders)]) == 0
    out = capsys.readouterr().out
    rows = table(out, "STOI (speech) at iteration 500 (higher is better)")
    assert set(rows) == {"clip", "speech"}
    a_mse = by_hand(VALUES[("a", "mse", "speech", "stoi", 500)])[0]
    perceptual = by_hand(VALUES[("a", "perceptual", "speech", "stoi", 500)])[0]
    b_mse = by_hand(VALUES[("b", "mse", "speech", "stoi", 500)])[0]
    assert rows["speech"] == [f"{a_mse} †", f"**{perceptual}**", b_mse]
    # a measure one folder holds: its columns there, n/a where the other has none
    cdpam = table(out, "CDPAM distance")
    assert cdpam["speech"] == [by_hand(VALUES[("a", "mse", "speech", "cdpam", 500)])[0] + " †",
                               "**" + by_hand(VALUES[("a", "perceptual", "speech", "cdpam", 500)])[0] + "**", "n/a"]
    # the default checkpoint is the last one every folder measured: 500 only
    assert "at iteration 250" not in out and "the best mean in" not in out
    assert "- `width=8: mse`: mse in " in out and "(3 seeds)" in out


def test_the_checkpoints_asked_for(folders, capsys):
    assert main(["compare", *map(str, folders), "--at", "250"]) == 0
    rows = table(capsys.readouterr().out, "high-band log-spectral distance (dB) at iteration 250")
    assert set(rows) == {"clip", "speech"}
    assert rows["speech"][2] == "**" + by_hand(VALUES[("b", "mse", "speech", "lsd_high_db", 250)])[0] + "**"
    assert main(["compare", *map(str, folders), "--at", "750"]) == 2
    err = capsys.readouterr().err
    assert "--at 750" in err and err.count("\n") == 1


def test_a_single_seed_is_its_mean_alone_and_never_apart(tmp_path, capsys):
    global SEEDS
    saved, SEEDS = SEEDS, [0]
    try:
        folders = (make_folder(tmp_path, "a", ["mse", "perceptual"], {}),)
    finally:
        SEEDS = saved
    assert main(["compare", *map(str, folders)]) == 0
    rows = table(capsys.readouterr().out, "high-band log-spectral distance (dB) at iteration 500")
    assert rows["clip"] == ["mse", "perceptual"] and rows["speech"] == ["20", "**15**"]


def test_folders_that_cannot_be_compared_are_one_line_naming_them(folders, tmp_path, capsys):
    missing = tmp_path / "nowhere"
    unfinished = tmp_path / "unfinished"
    make_folder(tmp_path, "unfinished", ["mse"], {})
    RunFolder(unfinished).metrics.unlink()
    empty = tmp_path / "empty"
    empty.mkdir()
    for bad in (missing, unfinished, empty):
        assert main(["compare", str(folders[0]), str(bad)]) == 2
        err = capsys.readouterr().err
        assert str(bad) in err and err.count("\n") == 1, err
    assert main(["compare", str(folders[0]), "--focus", "mse"]) == 0
    assert main(["compare", *map(str, folders), "--focus", "mse"]) == 2
    err = capsys.readouterr().err
    assert "width=32: mse, width=8: mse" in err and err.count("\n") == 1


def test_two_runs_of_one_configuration_are_told_apart_by_folder(listening_run, run, capsys):
    assert main(["compare", str(listening_run), str(run)]) == 0
    out = capsys.readouterr().out
    rows = table(out, "multi-resolution STFT distance at iteration 2")
    assert rows["clip"] == [f"{listening_run}: mse", f"{listening_run}: perceptual", f"{run}: mse",
                            f"{run}: perceptual"]
    # the same numbers in both: each row's best is bold in both folders, nothing apart
    for cells in (rows["speech"], rows["drums"]):
        assert cells[0] == cells[2] and cells[1] == cells[3] and "†" not in "".join(cells)
        assert sum(cell.startswith("**") for cell in cells) == 2
    assert re.search(r"iterations to within 1 dB", out)


def test_names_relabel_the_columns_in_order_and_focus_reads_them(folders, capsys):
    assert main(["compare", *map(str, folders), "--names", "A,P,B", "--focus", "P"]) == 0
    out = capsys.readouterr().out
    rows = table(out, "high-band log-spectral distance (dB) at iteration 500")
    assert rows["clip"] == ["A", "P", "B"]
    assert rows["speech"][1] == "**" + by_hand(VALUES[("a", "perceptual", "speech", "lsd_high_db", 500)])[0] + "**"
    assert "P: the best mean in 1 of 2 rows" in out and "(by B)" in out
    for bad in ("A,P", "A,A,B"):
        assert main(["compare", *map(str, folders), "--names", bad]) == 2
        err = capsys.readouterr().err
        assert "--names" in err and "width=8: mse" in err and err.count("\n") == 1


def test_the_mean_over_clips_by_hand(folders, capsys):
    """The last row: each column's mean of its speech and drums means, the lower the better."""
    assert main(["compare", *map(str, folders), "--over-clips"]) == 0
    out = capsys.readouterr().out
    rows = table(out, "high-band log-spectral distance (dB) at iteration 500")
    means = {key: statistics.mean([statistics.mean(VALUES[(where, loss, clip, "lsd_high_db", 500)])
                                   for clip in ("speech", "drums")])
             for key, (where, loss) in {"a": ("a", "mse"), "p": ("a", "perceptual"), "b": ("b", "mse")}.items()}
    # a's MSE (21 + 14.5) / 2 = 17.75, perceptual (15.5 + 15) / 2 = 15.25, b's MSE (18 + 9.5) / 2 = 13.75
    assert [means["a"], means["p"], means["b"]] == [17.75, 15.25, 13.75]
    assert rows["mean over clips"] == ["17.8", "15.2", "**13.8**"]
    # STOI is on speech alone: one clip, no mean over clips
    assert "mean over clips" not in table(out, "STOI (speech) at iteration 500")
