"""The training segments: the first N seconds of a corpus, and a draw that depends on (seed, step) alone."""

import numpy as np
import pytest
from scipy import stats

from pal.core.errors import UserError
from pal.codec.corpus import CorpusFile, samples_sha256
from pal.codec.segments import TrainingSet

RATE = 100


def corpus(*lengths: int) -> list[CorpusFile]:
    files = []
    for index, length in enumerate(lengths):
        samples = (np.arange(length, dtype=np.float32) + 1000 * index) / 10_000 + 0.01
        files.append(CorpusFile(f"f{index}", "all", f"f{index}.wav", samples, samples_sha256(samples)))
    return files


def test_first_seconds_cuts_in_file_order():
    files = corpus(300, 500, 400)
    whole = TrainingSet.first_seconds(files, None, 50, RATE)
    assert whole.seconds_used == 12.0
    part = TrainingSet.first_seconds(files, 6.5, 50, RATE)  # 300 + 350 of the second file
    assert [len(p) for p in part.pieces] == [300, 350]
    assert np.array_equal(part.pieces[1], files[1].samples[:350])


def test_a_cut_shorter_than_a_segment_drops_the_remnant():
    part = TrainingSet.first_seconds(corpus(300, 500), 3.2, 50, RATE)  # 20 samples of the second: dropped
    assert [len(p) for p in part.pieces] == [300]
    assert part.seconds_used == 3.0


def test_a_draw_is_a_function_of_seed_and_step():
    training = TrainingSet.first_seconds(corpus(300, 500), None, 50, RATE)
    assert np.array_equal(training.draw(3, 17, 8), training.draw(3, 17, 8))
    assert not np.array_equal(training.draw(3, 17, 8), training.draw(3, 18, 8))
    assert not np.array_equal(training.draw(3, 17, 8), training.draw(4, 17, 8))
    for (piece, start), segment in zip(training.offsets(3, 17, 8), training.draw(3, 17, 8)):
        assert np.array_equal(segment, training.pieces[piece][start:start + 50])


def test_every_segment_start_is_equally_likely():
    # 251 starts in the first file, 451 in the second: a chi-square test of uniformity over all 702
    training = TrainingSet.first_seconds(corpus(300, 500), None, 50, RATE)
    counts = np.zeros(702)
    for step in range(400):
        for piece, start in training.offsets(0, step, 64):
            assert 0 <= start <= len(training.pieces[piece]) - 50
            counts[start + (251 if piece == 1 else 0)] += 1
    assert stats.chisquare(counts).pvalue > 1e-3


@pytest.mark.parametrize("lengths, seconds, message", [
    ((300, 40), None, "shorter than a training segment"),
    ((300,), 3.5, "more than the training corpus holds"),
    ((300,), 0.2, "shorter than one training segment"),
])
def test_refusals_name_the_cause(lengths, seconds, message):
    with pytest.raises(UserError, match=message):
        TrainingSet.first_seconds(corpus(*lengths), seconds, 50, RATE)


def test_a_silent_cut_is_refused():
    silent = CorpusFile("s", "all", "s.wav", np.zeros(300, np.float32), "x")
    with pytest.raises(UserError, match="silent"):
        TrainingSet.first_seconds([silent] + corpus(300), 2.0, 50, RATE)
