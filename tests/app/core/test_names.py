"""A loss's options and labels never become paths of their own.

:func:`pal.core.names.folder_name` is checked against an independent encoder (``urllib.parse.quote``
with the same safe characters) and by the filesystem itself; then every dangerous label goes
through a real ``pal run`` together: nothing is written outside ``--out``, each label has its own
folder holding its own loss's history, and the page's links open those files.
"""

import html
import re
import string
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
import pytest

from pal.cli import main
from pal.core.errors import UserError
from pal.core.names import MAX_NAME_BYTES, SAFE, UnsafeName, folder_name, label_of

DANGEROUS = [
    "..", ".", "../x", "../../escaped", "a/b", "/abs", "a\\b", "#", "%", "?", "a b", " ", "%2F", "a%2Fb",
    "a_b", ".hidden", "déjà", "名前", "\u202e", "a\nb", "\x00", "~", "*", "a/../../b", "-", "%25",
]


@pytest.mark.parametrize("label", DANGEROUS + ["mse", "masked+perceptual", "perceptual:taps=256:similarity=mse"])
def test_a_folder_name_is_one_safe_component_that_gives_the_label_back(label, tmp_path):
    name = folder_name(label)
    assert label_of(name) == label
    assert re.fullmatch(r"[A-Za-z0-9._+=:%-]+", name) and not name.startswith(".")
    # Independently: RFC 3986 percent-encoding with the same safe set, a leading dot encoded.
    reference = quote(label, safe="".join(sorted(SAFE - set(string.ascii_letters + string.digits + "_.-~"))))
    reference = reference.replace("~", "%7E")
    if reference.startswith("."):
        reference = "%2E" + reference[1:]
    assert name == reference
    made = tmp_path / name
    made.mkdir()
    assert [p.name for p in tmp_path.iterdir()] == [name] and made.parent == tmp_path


def test_safe_names_are_their_own_folder_names():
    """Folders written before names were encoded (every registered loss, options, user files) read back."""
    for label in ["mse", "perceptual", "masked+perceptual", "mel-mrstft", "my_loss.py:MyLoss:scale=2",
                  "speech", "piano.w3", "drums-2"]:
        assert folder_name(label) == label


def test_different_labels_never_share_a_folder():
    labels = DANGEROUS + [unquote(label) for label in DANGEROUS] + ["A", "a", "a.", "a..", ".a", "%2Ea"]
    names = {label: folder_name(label) for label in set(labels)}
    assert len(set(names.values())) == len(names)


@pytest.mark.parametrize("label", ["", "x" * (MAX_NAME_BYTES + 1), "é" * (MAX_NAME_BYTES // 6 + 1)])
def test_a_label_that_cannot_name_a_folder_is_refused(label):
    with pytest.raises(UnsafeName):
        folder_name(label)
    assert issubclass(UnsafeName, UserError) and issubclass(UnsafeName, ValueError)


# -- through a real pal run -----------------------------------------------------------------------

LOSS_FILE = '''
import torch

class Tagged(torch.nn.Module):
    """Mean squared error times a weight the tag decides: each label's runs have their own numbers."""

    def __init__(self, sample_rate, tag=""):
        super().__init__()
        self.weight = weight(tag)

    def forward(self, input, target):
        return self.weight * ((input - target) ** 2).mean()


def weight(tag):
    return 1.0 + sum(map(ord, tag)) % 97
'''

# Option values a label takes unchanged: every one of these was a path, or broke a link, before.
TAGS = ["..", "../x", "../../escaped", "a/b", "#", "%", "?", "a b", "déjà vu", "%2F", "a%2Fb", "/..", ".x",
        "x#y?z%w"]


def test_dangerous_labels_in_a_real_run_stay_in_their_own_folders(tmp_path, monkeypatch):
    """Options with ``..``, ``/``, ``#``, ``%``, ``?``, spaces and unicode, and pairs that a
    cleaning-up of names would merge (``a/b`` and ``a%2Fb``, ``%`` and ``%2F``), in one run."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "tagged.py").write_text(LOSS_FILE)
    labels = [f"tagged.py:Tagged:tag={tag}" for tag in TAGS]
    out = work / "runs" / "out"
    assert main(["run", "drums", "--losses", ",".join(labels), "--iterations", "2", "--checkpoint-every", "1",
                 "--out", str(out), "--no-progress"]) == 0

    # Nothing outside --out: the working folder holds the loss file and the run folder only.
    assert sorted(p.name for p in work.iterdir()) == ["runs", "tagged.py"]
    assert sorted(p.name for p in (work / "runs").iterdir()) == ["out"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]
    clip = out / "clips" / "drums"
    assert {p.name for p in clip.iterdir() if p.is_dir()} == {folder_name(label) for label in labels}

    # Each folder holds its own loss's history: the first loss, divided by that label's weight, is
    # the same for every label (one starting point for all), and no two folders share a file.
    first = {}
    for tag, label in zip(TAGS, labels):
        run = clip / folder_name(label) / "seed-0"
        assert label_of(run.parent.name) == label
        assert sorted(p.name for p in run.iterdir() if p.suffix == ".wav") == ["iter-0001.wav", "iter-0002.wav"]
        losses = np.loadtxt(run / "losses.csv", delimiter=",", skiprows=1)
        first[label] = losses[0, 1] / (1.0 + sum(map(ord, tag)) % 97)
    assert np.allclose(list(first.values()), next(iter(first.values())), rtol=1e-6)

    # The page links every checkpoint of every label to the file it is, URL-encoded.
    page = (out / "report.html").read_text()
    links = [html.unescape(link) for link in re.findall(r'data-audio="([^"]+)"', page)]
    assert len(links) == 2 + 2 * len(labels)  # the original in each column, then each loss's two
    for label in labels:
        wanted = f"clips/drums/{quote(folder_name(label), safe='')}/seed-0/iter-0002.wav"
        assert wanted in links
    for link in links:
        assert "#" not in link and "?" not in link and " " not in link
        assert (out / unquote(link)).is_file()


def test_a_label_too_long_for_a_folder_is_refused_before_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tagged.py").write_text(LOSS_FILE)
    assert main(["run", "drums", "--losses", "tagged.py:Tagged:tag=" + "/" * 100, "--iterations", "1",
                 "--checkpoint-every", "1", "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "too long to name a folder" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tagged.py"]


def test_a_toml_label_with_a_path_stays_inside(tmp_path, monkeypatch):
    """The same labels from a config file: the file's losses list, not the shell, names them."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tagged.py").write_text(LOSS_FILE)
    config = tmp_path / "experiment.toml"
    config.write_text('clips = ["drums"]\nlosses = ["tagged.py:Tagged:tag=../../../outside", "mse"]\n'
                      'iterations = 1\ncheckpoint_every = 1\nout = "out"\n')
    assert main(["run", "--config", str(config), "--no-progress"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiment.toml", "out", "tagged.py"]
    assert (Path("out") / "clips" / "drums" / "tagged.py:Tagged:tag=..%2F..%2F..%2Foutside" / "seed-0"
            / "iter-0001.wav").is_file()
