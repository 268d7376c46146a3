"""The packages of ``pal`` import one way only, as ``scripts/architecture``'s ALLOWED says, and the
picture of them in the documentation is the one the source draws today."""

import importlib.machinery
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def load_architecture():
    loader = importlib.machinery.SourceFileLoader("architecture", str(REPO / "scripts" / "architecture"))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("architecture", loader))
    loader.exec_module(module)
    return module


architecture = load_architecture()


def test_every_top_level_name_of_pal_is_a_package_or_the_entry_point():
    names = {p.name for p in (REPO / "src" / "pal").iterdir() if p.name != "__pycache__"}
    packages = {name for name in names if (REPO / "src" / "pal" / name / "__init__.py").exists()}
    assert names - packages == {"__init__.py", "cli.py"}
    assert packages | {architecture.ENTRY} == set(architecture.ALLOWED) and len(names) <= 12


def test_imports_between_packages_go_only_where_allowed():
    assert architecture.forbidden(architecture.package_imports()) == []


def test_the_allowed_directions_are_a_layering():
    """Each package may import only packages declared before it: no circle is possible."""
    order = list(architecture.ALLOWED)
    for position, (package, allowed) in enumerate(architecture.ALLOWED.items()):
        assert allowed <= set(order[:position]), package
    assert architecture.ALLOWED["core"] == frozenset()


def test_a_forbidden_import_is_found_and_named(tmp_path):
    """The checker itself, on a source tree written here: core importing run is refused."""
    for module in ["pal/__init__.py", "pal/core/__init__.py", "pal/run/__init__.py", "pal/run/folder.py"]:
        (tmp_path / module).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / module).write_text("")
    (tmp_path / "pal/core/names.py").write_text("from ..run.folder import RunFolder\n")
    imports = architecture.package_imports(tmp_path)
    assert imports == {("core", "run"): ["pal.core.names -> pal.run", "pal.core.names -> pal.run.folder"]}
    assert architecture.forbidden(imports) == ["pal.core.names -> pal.run", "pal.core.names -> pal.run.folder"]


def test_the_picture_is_the_one_the_source_draws():
    drawn = architecture.picture(architecture.package_imports())
    assert architecture.PICTURE.read_text(encoding="utf-8") == drawn, "run scripts/architecture"
    for package in architecture.ALLOWED:
        assert package in drawn
