"""The built-in corpus's files (src/pal/codec/data), checked against MANIFEST.tsv and README.md.

Independent of make-corpus.sh: the files are read with soundfile and hashed here, and whether a
test file's audio is also in a training file is checked by normalised cross-correlation of every
second of every test file with every 1-second window of every training file, which finds an
excerpt at any offset and any gain.
"""

import csv
import hashlib
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile
from scipy import fft

# Found without importing pal.codec, so these checks need nothing of the package but its folder.
DATA = Path(importlib.util.find_spec("pal").origin).parent / "codec" / "data"
RATE = 16000
SPLITS = ("train", "test")
GROUPS = ("speech", "music", "drums")
HEADER = ["split", "group", "path", "seconds", "sha256", "licence", "credit"]
LICENCES = {"CC BY-SA 3.0", "CC BY 3.0", "Public domain", "MIT"}
SILENCE, LONGEST_QUIET = 1e-4, 1.0  # no run of >= 1 s with every |sample| below 1e-4
MIN_TRAIN_SECONDS, MIN_TEST_FILES = 180.0, 3
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf"}


def manifest() -> list[dict[str, str]]:
    with open(DATA / "MANIFEST.tsv", encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        assert reader.fieldnames == HEADER
        return list(reader)


ROWS = manifest()
README = (DATA / "README.md").read_text(encoding="utf-8")


def read(path: str) -> np.ndarray:
    samples, rate = soundfile.read(DATA / path, dtype="float64", always_2d=True)
    assert rate == RATE and samples.shape[1] == 1, path
    return samples[:, 0]


def longest_run(mask: np.ndarray) -> int:
    """The length of the longest run of True in ``mask``."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[::2]).max()) if len(edges) else 0


def test_the_manifest_has_one_row_per_file_with_a_known_split_group_and_licence():
    paths = [row["path"] for row in ROWS]
    assert len(paths) == len(set(paths))
    for row in ROWS:
        assert row["split"] in SPLITS and row["group"] in GROUPS, row["path"]
        assert row["path"] == f"{row['split']}/{row['group']}/{Path(row['path']).name}"
        assert row["path"].endswith(".flac")
        assert row["licence"] in LICENCES, row["path"]
        assert row["credit"].strip(), row["path"]
        if row["licence"] == "CC BY-SA 3.0":
            assert "https://creativecommons.org/licenses/by-sa/3.0/" in row["credit"], row["path"]
        if row["licence"] == "CC BY 3.0":
            assert "https://creativecommons.org/licenses/by/3.0/" in row["credit"], row["path"]
    # pal credits a file by its path below the split, so no name is in both splits
    below_split = [row["path"].split("/", 1)[1] for row in ROWS]
    assert len(below_split) == len(set(below_split))


def test_no_audio_file_in_the_data_folder_is_missing_from_the_manifest():
    on_disk = {p.relative_to(DATA).as_posix() for p in DATA.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES}
    assert on_disk == {row["path"] for row in ROWS}
    # and nothing but the manifest's files sits in train/ and test/
    for split in SPLITS:
        others = {p.relative_to(DATA).as_posix() for p in (DATA / split).rglob("*") if p.is_file()}
        assert others <= {row["path"] for row in ROWS}, others


@pytest.mark.parametrize("row", ROWS, ids=[row["path"] for row in ROWS])
def test_a_file_is_its_manifest_row_mono_16_bit_16000_hz_and_never_quiet_for_a_second(row):
    path = DATA / row["path"]
    assert path.is_file()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == row["sha256"]
    info = soundfile.info(path)
    assert (info.format, info.subtype, info.channels, info.samplerate) == ("FLAC", "PCM_16", 1, RATE)
    samples = read(row["path"])
    assert abs(len(samples) / RATE - float(row["seconds"])) <= 0.01
    assert np.all(np.isfinite(samples))
    peak = np.abs(samples).max()
    assert 20 * np.log10(peak) == pytest.approx(-1.0, abs=0.1)  # peak-normalised to -1 dBFS
    assert longest_run(np.abs(samples) < SILENCE) < LONGEST_QUIET * RATE


def test_every_group_has_its_training_minutes_and_three_test_files_as_the_readme_states():
    seconds = {(s, g): 0.0 for s in SPLITS for g in GROUPS}
    files = {(s, g): 0 for s in SPLITS for g in GROUPS}
    for row in ROWS:
        seconds[row["split"], row["group"]] += float(row["seconds"])
        files[row["split"], row["group"]] += 1
    for group in GROUPS:
        assert seconds["train", group] >= MIN_TRAIN_SECONDS, group
        assert files["test", group] >= MIN_TEST_FILES, group
    # the README's table of totals: | split | group | files | seconds |
    stated = {(s, g): (int(n), float(t)) for s, g, n, t in
              re.findall(r"^\| (train|test) \| (speech|music|drums) \| (\d+) \| ([\d.]+) \|", README, re.MULTILINE)}
    assert set(stated) == set(seconds)
    for key, (n, total) in stated.items():
        assert n == files[key] and total == pytest.approx(seconds[key], abs=0.05), key
    assert f"at least {MIN_TRAIN_SECONDS:.0f} s of training audio" in README


def test_the_readme_lists_every_file_and_the_licence_texts_ship_beside_them():
    for row in ROWS:
        name = Path(row["path"]).name
        lines = [line for line in README.splitlines() if line.startswith("|") and f"`{name}`" in line]
        assert lines, f"{name} has no row in README.md"
        assert any(row["licence"] in line for line in lines), name
    licences = {row["licence"] for row in ROWS}
    if "CC BY-SA 3.0" in licences:
        text = (DATA / "LICENSE-CC-BY-SA-3.0.txt").read_text(encoding="utf-8")
        assert text.startswith("Creative Commons Attribution-ShareAlike 3.0 Unported")
    if "CC BY 3.0" in licences:
        text = (DATA / "LICENSE-CC-BY-3.0.txt").read_text(encoding="utf-8")
        assert "Attribution 3.0 Unported" in text[:200] and "ShareAlike" not in text[:200]


def _chunks(samples: np.ndarray) -> list[np.ndarray]:
    """Every whole second of the file, and its last second."""
    starts = list(range(0, len(samples) - RATE + 1, RATE)) + [len(samples) - RATE]
    return [samples[s : s + RATE] for s in starts]


def max_ncc(chunks: list[np.ndarray], train: dict[str, np.ndarray], batch: int = 16) -> tuple[float, int, str]:
    """The highest |normalised cross-correlation| of any chunk with any 1-s window of any training
    file, at any offset: (value, which chunk, which training file). 1 means that chunk's audio is
    in that file (at some gain)."""
    size = fft.next_fast_len(max(len(x) for x in train.values()) + RATE, real=True)
    prepared = []
    for train_path, x in train.items():
        energy = np.concatenate([[0.0], np.cumsum(x * x)])
        norms = np.sqrt(np.maximum(energy[RATE:] - energy[:-RATE], 0.0))  # |x[t:t+1s]| for each t
        prepared.append((train_path, fft.rfft(x.astype(np.float32), n=size, workers=-1), norms))
    worst = (0.0, -1, "")
    for first in range(0, len(chunks), batch):
        unit = np.stack([c[::-1] / np.linalg.norm(c) for c in chunks[first : first + batch]])
        spectra = fft.rfft(unit.astype(np.float32), n=size, axis=1, workers=-1)
        for train_path, spectrum, norms in prepared:
            products = fft.irfft(spectra * spectrum[None, :], n=size, axis=1, workers=-1)  # float32: ample for 0.8 vs 1
            # products[:, t + RATE - 1] = sum(chunk * x[t:t+RATE]) / |chunk|
            ncc = products[:, RATE - 1 : RATE - 1 + len(norms)] / np.maximum(norms, 1e-12)[None, :]
            ncc[:, norms < 1e-3] = 0.0  # windows of near-silence say nothing
            best = np.abs(ncc).max(axis=1)
            i = int(np.argmax(best))
            if best[i] > worst[0]:
                worst = (float(best[i]), first + i, train_path)
    return worst


@pytest.fixture(scope="module")
def train_audio() -> dict[str, np.ndarray]:
    return {row["path"]: read(row["path"]) for row in ROWS if row["split"] == "train"}


def test_the_correlation_finds_a_training_excerpt_at_another_gain_and_offset(train_audio):
    path = sorted(train_audio)[len(train_audio) // 2]
    x = train_audio[path]
    excerpt = 0.3 * x[12345 : 12345 + RATE] + 1e-5 * np.random.default_rng(0).standard_normal(RATE)
    value, _, where = max_ncc([excerpt], train_audio)
    assert value > 0.99 and where == path


def test_no_test_audio_is_in_a_training_file_at_any_offset_or_gain(train_audio):
    test = {row["path"]: read(row["path"]) for row in ROWS if row["split"] == "test"}
    train_hashes = {hashlib.sha256(x.tobytes()).hexdigest() for x in train_audio.values()}
    assert not train_hashes & {hashlib.sha256(x.tobytes()).hexdigest() for x in test.values()}
    # every second of every test file against every 1-s window of every training file
    chunks = [(path, chunk) for path, x in test.items() for chunk in _chunks(x)]
    value, i, where = max_ncc([chunk for _, chunk in chunks], train_audio)
    # the same audio at any gain correlates at ~1; distinct recordings stay far below (README: 0.5)
    assert value < 0.8, (value, chunks[i][0], where)
