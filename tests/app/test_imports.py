"""No import circles in ``src/``: the import graph read from the source, and every module imported
alone, with none of the project's modules loaded before it.

The graph counts every import, at the top of a module or inside a function (a lazy import still
ties two modules together), and importing ``a.b.c`` as also importing the packages ``a.b`` and
``a`` whose ``__init__`` runs first.
"""

import os
import subprocess
import sys
from pathlib import Path

import pal
import perceptual_audio_loss
from test_architecture import load_architecture

architecture = load_architecture()
PACKAGES = {"pal": Path(pal.__file__).parent, "perceptual_audio_loss": Path(perceptual_audio_loss.__file__).parent}
RUN_ON_IMPORT = {"pal.bench.__main__", "pal.__main__"}  # `python -m` entry points: importing them runs them
MODULES = architecture.module_files(PACKAGES)


def imported_by(name: str, path: Path) -> set[str]:
    return architecture.imported_by(name, path, MODULES)


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of two or more modules (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_circle_finder_finds_a_circle_through_a_package():
    """The finder itself, on a graph written by hand: a -> b.c -> (package b) -> d -> a."""
    graph = {"a": {"b.c"}, "b.c": {"b"}, "b": {"d"}, "d": {"a"}, "e": {"a"}}
    assert circles(graph) == [["a", "b", "b.c", "d"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_relative_imports_and_packages_are_read_as_python_resolves_them():
    assert "pal.run.config" in imported_by("pal.bench.cli", MODULES["pal.bench.cli"])
    assert "pal.core.commandline" in imported_by("pal.cli", MODULES["pal.cli"])
    # pal.sweeps.run imports pal.run.sweep_folder, and from its own package, pal.sweeps.shard
    assert {"pal.run.sweep_folder", "pal.sweeps.shard"} <= imported_by("pal.sweeps.run", MODULES["pal.sweeps.run"])
    assert "pal.sweeps" not in imported_by("pal.sweeps.run", MODULES["pal.sweeps.run"])


def test_no_import_circles_in_src():
    graph = {name: imported_by(name, path) for name, path in MODULES.items()}
    assert circles(graph) == []


# One interpreter loads the heavy third-party libraries once, then forks a child per module: each
# child imports its module with none of the project's modules loaded yet (as a fresh interpreter
# would), in a fraction of a second instead of torch's start-up each time.
IMPORT_EACH_ALONE = """
import os, sys, traceback
import numpy, scipy.signal, torch
assert not [m for m in sys.modules if m.split('.')[0] in ('pal', 'perceptual_audio_loss')]
failed = 0
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            __import__(name)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        print("cannot be imported alone:", name)
        failed += 1
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_alone():
    names = sorted(set(MODULES) - RUN_ON_IMPORT)
    finished = subprocess.run([sys.executable, "-c", IMPORT_EACH_ALONE, *names], capture_output=True, text=True,
                              timeout=300)
    assert finished.returncode == 0, (finished.stdout + finished.stderr)[-3000:]


def test_a_module_that_cannot_be_imported_alone_is_named(tmp_path):
    """The forking importer itself: a module whose import fails is reported by name."""
    (tmp_path / "broken_alone.py").write_text("import pal.no_such_module\n")
    finished = subprocess.run([sys.executable, "-c", IMPORT_EACH_ALONE, "json", "broken_alone"], capture_output=True,
                              text=True, timeout=300, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert finished.returncode == 1 and "cannot be imported alone: broken_alone" in finished.stdout
    assert "cannot be imported alone: json" not in finished.stdout
