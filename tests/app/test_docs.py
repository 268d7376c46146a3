"""The documentation's examples run, so they cannot drift from the code.

Every ```python block of README.md and of docs/**/*.md is executed, each alone in a fresh
namespace (the blocks are written to be copied whole), in a scratch working folder. A block that
needs what the test machine may lack says so on the line before it, and is skipped with that
reason: ``<!-- docs-test: needs-cuda -->`` (run where CUDA is), ``<!-- docs-test: skip REASON -->``
(never run here: a long run). The site itself is built with ``mkdocs build --strict`` by
``make docs``, which ``make test`` runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import perceptual_audio_loss

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
MARKER = re.compile(r"<!--\s*docs-test:\s*(needs-cuda|skip)\s*(.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    code: str
    marker: tuple[str, str] | None

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def python_blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.search(before)
        blocks.append(Block(page, line, match.group(1), marker.groups() if marker else None))
    return blocks


BLOCKS = [block for page in PAGES for block in python_blocks(page)]


def test_the_pages_have_examples_to_run():
    """The runner finds the blocks it should (a broken pattern would make every test vanish)."""
    pages = {block.page.relative_to(ROOT).as_posix() for block in BLOCKS}
    assert {"README.md", "docs/getting-started.md", "docs/masking-model.md",
            "docs/guides/your-own-loss.md", "docs/guides/benchmarks.md"} <= pages
    assert python_blocks(ROOT / "README.md")[0].code.startswith("import torch\n")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A scratch working folder, and the library's registry and torch's defaults as they were."""
    monkeypatch.chdir(tmp_path)
    registered = dict(perceptual_audio_loss.LOSSES)
    dtype, grad = torch.get_default_dtype(), torch.is_grad_enabled()
    yield
    perceptual_audio_loss.LOSSES.clear()
    perceptual_audio_loss.LOSSES.update(registered)
    torch.set_default_dtype(dtype)
    torch.set_grad_enabled(grad)


@pytest.mark.parametrize("block", BLOCKS, ids=lambda block: block.name)
def test_a_documented_example_runs(block, isolated):
    if block.marker is not None:
        kind, reason = block.marker
        if kind == "skip":
            pytest.skip(f"{block.name}: {reason or 'marked skip'}")
        if not torch.cuda.is_available():
            pytest.skip(f"{block.name}: needs CUDA")
    torch.manual_seed(0)
    exec(compile(block.code, block.name, "exec"), {"__name__": "__docs_example__"})


def test_the_readme_is_a_front_door():
    """It shows the two commands, stays about three screens long and links to every guide."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme
    assert len(readme.splitlines()) <= 200
    for page in sorted((ROOT / "docs").rglob("*.md")):
        relative = page.relative_to(ROOT).as_posix()
        if relative.startswith("docs/guides/") or relative in ("docs/getting-started.md",
                                                                  "docs/loss-contract.md",
                                                                  "docs/masking-model.md",
                                                                  "docs/architecture.md"):
            assert f"]({relative}" in readme, f"README.md does not link to {relative}"


def test_every_relative_link_of_the_readme_resolves():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#\s]+)", readme):
        if "://" not in target:
            assert (ROOT / target).exists(), target
