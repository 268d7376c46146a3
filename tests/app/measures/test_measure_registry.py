"""The measure registry: each measure's key is spelled in its declaration only, and every measure
reaches the page's charts, the claims table and ``pal compare`` as its declaration says."""

import ast
import html
from pathlib import Path

import numpy as np

import pal
from pal.measures import claims, registry
from pal.report import compare
from pal.report import page
from pal.run.folder import RunFolder, write_json

SOURCE = Path(pal.__file__).parent
DECLARATION = "measures/registry.py"
# The same words as another thing's name, each with why: not a measure's key, so left as spelled.
SAME_WORD_ELSEWHERE = {
    ("mrstft", "losses/peers.py"): "the peer loss's registered name",
    ("mrstft", "losses/registry.py"): "the peer loss's capability record",
    ("mrstft", "bench/matrix.py"): "the benchmark's name for that peer loss",
    ("mrstft", "bench/ops.py"): "the benchmark's name for that peer loss",
    ("mrstft", "codec/config.py"): "the peer loss's name among pal codec's default losses",
    ("mrstft", "bench/codec.py"): "the peer loss a codec step's time is divided by",
    ("mrstft", "codec/questions.py"): "the peer loss the data and capacity questions measure against",
    ("cdpam", "measures/judges.py"): "the judge's package and its extra",
    ("cdpam", "sweeps/plan.py"): "the pal run setting a sweep passes on",
}


def key_literals() -> set[tuple[str, str]]:
    """(key, module) for every string constant in ``src/pal/`` that equals a measure's key."""
    keys = {m.key for m in registry.MEASURES}
    found = set()
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in keys:
                found.add((node.value, path.relative_to(SOURCE).as_posix()))
    return found


def test_a_measures_key_is_spelled_in_its_declaration_only():
    found = key_literals()
    assert {key for key, module in found if module == DECLARATION} == {m.key for m in registry.MEASURES}
    assert {item for item in found if item[1] != DECLARATION} <= set(SAME_WORD_ELSEWHERE)


def test_the_registry_is_consistent():
    keys = [m.key for m in registry.MEASURES]
    assert len(set(keys)) == len(keys) and registry.BY_KEY == dict(zip(keys, registry.MEASURES))
    assert set(registry.CLAIMED) <= set(registry.COMPARED) <= set(registry.MEASURES)
    for measure in registry.MEASURES:
        assert (measure.compute is None) == measure.per_run, measure.key
        assert measure.derived_from is None or measure.derived_from.compute is not None
        assert bool(measure.claim) == (measure in registry.CLAIMED or measure is registry.PESQ), measure.key
    assert registry.JUDGES == (registry.CDPAM.judge,)


def test_a_checkpoint_records_what_is_asked_for():
    rate = 16000
    t = np.arange(rate) / rate
    original = np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 3000 * t)
    generated = original + 0.05 * np.random.default_rng(0).standard_normal(rate)
    values = registry.measure(original, generated, rate, speech=True)
    assert list(values) == [m.key for m in registry.MEASURES if m.compute and m.judge is None]
    assert all(np.isfinite(v) for v in values.values())
    plain = registry.measure(original, generated, rate, speech=False)
    assert list(plain) == [m.key for m in registry.MEASURES if m.compute and m.judge is None and not m.speech]
    assert registry.checkpoint_measures(True, [registry.CDPAM.judge])[-1] is registry.CDPAM


def every_measure_rows(losses=("mse", "perceptual"), seeds=(0, 1, 2), iterations=(250, 500)) -> list[dict]:
    """Rows as a finished run records them, holding every recorded measure of one speech clip."""
    rng = np.random.default_rng(1)
    return [dict(clip="speech", loss=loss, seed=seed, iteration=iteration, metric=key, value=float(rng.uniform(1, 2)))
            for key in sorted(registry.recorded_keys(registry.MEASURES)) for loss in losses
            for seed in seeds for iteration in iterations]


def test_every_measure_reaches_the_page_the_claims_and_compare(tmp_path):
    rows = every_measure_rows()
    losses = ["mse", "perceptual"]
    charts = page.measure_charts(rows, losses, {"mse": "#000", "perceptual": "#111"})
    per_checkpoint = [m for m in registry.MEASURES if not m.per_run]
    assert len(charts) == len(per_checkpoint)
    for measure, chart in zip(per_checkpoint, charts):
        assert f'aria-label="{html.escape(measure.chart)}"' in chart

    claimed = {row.measure for row in claims.claims_table(rows, losses)}
    assert claimed == set(registry.CLAIMED)

    folder = RunFolder(tmp_path / "run")
    folder.root.mkdir()
    write_json(folder.config, {"losses": losses, "iterations": 500, "checkpoint_every": 250, "sample_rate": 11025,
                               "window": 8192, "clip_names": ["speech"], "seeds": [0, 1, 2],
                               "identity": {"losses": losses, "seeds": [0, 1, 2], "iterations": 500}})
    folder.write_metrics(rows)
    tables = compare.compare(compare.read_runs([folder.root]))
    assert [t.measure for t in tables if t.iteration in (None, 500)] == list(registry.COMPARED)
    text = compare.compare_folders([folder.root])
    for measure in registry.COMPARED:
        assert measure.name in text
