"""The codec grid's questions (pal.codec.questions) on a table of measures made by hand, every
answer worked out below from the chosen values."""

import pytest

from pal.codec.folder import CodecRecord
from pal.codec.questions import answers, answers_markdown, best_cells, capacity_question, cells, data_question

# ViSQOL by loss, width and data; each seed adds 0.01 (seed 1) or 0.02 (seed 2), so every mean is
# the value + 0.01 and every 95 % half-width is 4.303 * 0.01 / sqrt(3) = 0.025: differences of 0.1
# are apart.
VISQOL = {
    ("mse", 8, 30.0): 2.0, ("mse", 8, None): 2.5, ("mrstft", 8, 30.0): 2.2, ("mrstft", 8, None): 2.6,
    ("auditory", 8, 30.0): 2.7, ("auditory", 8, None): 3.05,
    ("mse", 16, 30.0): 2.4, ("mse", 16, None): 2.9, ("mrstft", 16, 30.0): 2.5, ("mrstft", 16, None): 3.0,
    ("auditory", 16, 30.0): 2.9, ("auditory", 16, None): 3.3,
}
CORPUS_SECONDS = 543.9


@pytest.fixture
def grid():
    config = CodecRecord(
        losses=["mse", "mrstft", "auditory"], seeds=[0, 1, 2], width=[8, 16], train_seconds=[30.0, "all"],
        steps=10, checkpoint_every=10, sample_rate=16000, bottleneck=8,
        test_files=[{"name": "speech/a", "group": "speech"}, {"name": "music/b", "group": "music"}],
        train_files=[{"name": "t"}], identity={}, data_seconds={"30s": 30.0, "all": CORPUS_SECONDS})
    rows = []
    for (loss, width, amount), value in VISQOL.items():
        for seed in (0, 1, 2):
            for name, group in (("speech/a", "speech"), ("music/b", "music")):
                where = {"file": name, "group": group, "loss": loss, "width": width, "train_seconds": amount,
                         "seed": seed, "step": 10}
                score = value + 0.01 * seed
                rows.append({**where, "metric": "visqol", "value": score})
                rows.append({**where, "metric": "mrstft", "value": 1 / score})  # lower is better: the same order
                rows.append({**where, "metric": "visqol", "value": 0.0, "step": 5})  # not the last step: unused
    return config, rows


def test_every_cell_of_every_width_and_data(grid):
    config, rows = grid
    found = cells(config, rows)
    assert len(found) == 2 * 2 * 2 * 2  # widths x data x groups x (ViSQOL, MR-STFT)
    first = next(c for c in found if c.width == 8 and c.train_seconds == 30.0 and c.measure.startswith("ViSQOL"))
    assert first.estimates["auditory"].mean == pytest.approx(2.71)
    assert first.estimates["auditory"].half_width == pytest.approx(4.302653 * 0.01 / 3 ** 0.5, rel=1e-5)


def test_best_cells_counts_the_best_means_and_the_losses_apart(grid):
    config, rows = grid
    by_loss = {entry.loss: entry for entry in best_cells(config, rows)}
    assert len(by_loss["auditory"].best) == 16 and by_loss["auditory"].share == 1.0
    assert not by_loss["auditory"].beaten
    assert len(by_loss["mse"].beaten) == 16 and all(set(by) == {"mrstft", "auditory"} for _, by in by_loss["mse"].beaten)
    assert all(by == ["auditory"] for _, by in by_loss["mrstft"].beaten) and not by_loss["mrstft"].best


def test_the_data_question_finds_the_smallest_amount_reaching_the_baselines(grid):
    config, rows = grid
    found = {(a.loss, a.width): a for a in data_question(config, rows, config.data_seconds)}
    assert set(found) == {("auditory", 8), ("auditory", 16)}  # the baselines are not asked
    # width 8: target max(2.51, 2.61) = 2.61; auditory with 30 s: 2.71, so 30 s, 30 / 543.9 of the corpus.
    assert found[("auditory", 8)].target == pytest.approx(2.61)
    assert found[("auditory", 8)].reached == "30s" and found[("auditory", 8)].fraction == pytest.approx(30 / CORPUS_SECONDS)
    # width 16: target 3.01; with 30 s 2.91 falls short, all of it (3.31) reaches it.
    assert found[("auditory", 16)].reached == "all" and found[("auditory", 16)].fraction == pytest.approx(1.0)


def test_the_capacity_question_compares_with_mrstft_one_width_up(grid):
    config, rows = grid
    found = {a.loss: a for a in capacity_question(config, rows)}
    assert set(found) == {"mse", "auditory"}
    assert found["auditory"].mine.mean == pytest.approx(3.06) and found["auditory"].peer.mean == pytest.approx(3.01)
    assert found["auditory"].reached and not found["mse"].reached  # mse at 8: 2.51


def test_the_markdown_shows_every_loss_and_the_misses(grid):
    text = answers_markdown(answers(*grid))
    assert "| auditory | 16 of 16 | 100% | 0 | - |" in text
    assert "| mse | 0 of 16 | 0% | 16 | auditory, mrstft |" in text
    assert "| auditory | 16 | 2.91 ± 0.025 | 3.31 ± 0.025 | 3.01 | all (100%) |" in text
    assert "| mse | 8 | 2.51 ± 0.025 | 16 | 3.01 ± 0.025 | no |" in text
