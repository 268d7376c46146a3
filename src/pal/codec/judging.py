"""What scores a codec run's decodes, and when: the budget of the judging.

- The measures made by formula (SNR, log-spectral distance overall and in three bands, MR-STFT
  distance, noise floor; STOI and PESQ on speech) score every test file at every checkpoint,
  so the page can show how each model got there.
- The judges (ViSQOL, with its speech mode on speech; DNSMOS on speech; CDPAM), the slow ones,
  score every test file at each model's last checkpoint only, the model the run ends with.
- A judge's score is kept in ``judged.json`` by the SHA-256 of the original, of the decode
  and the measure's key: a resumed run, or the same command with a judge added, scores only what
  is new, and a decode that did not change is never judged twice.
- What is left to judge is shared among :data:`JUDGE_WORKERS` processes (the machine's cores, at
  most): ViSQOL and DNSMOS are single-threaded Python and numba. Every score is the same whichever
  process makes it, so the records do not depend on the number of workers.

CDPAM is a judge of short clips (``pal run``'s 0.74 s windows): on whole test files it takes about
2 s per second of audio on a 2-core CPU (21 s for an 8.5 s file, against ViSQOL's 1.2 s), so
``--judges auto`` leaves it out and ``--judges visqol,dnsmos,cdpam`` asks for it.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from ..core import records
from ..core.audio import read_audio
from ..core.files import atomic_write_text
from ..measures.judges import Judge
from ..measures.registry import CDPAM, CODEC_MEASURES, DNSMOS, MEASURES, VISQOL, VISQOL_SPEECH, Measure, Pair
from .folder import CodecFolder, ModelStatus
from .train import CodecModel

JUDGED = "judged.json"
FORMULAS = tuple(m for m in MEASURES if m.compute is not None and m.judge is None)
JUDGED_MEASURES = (VISQOL, VISQOL_SPEECH, DNSMOS, CDPAM)  # in the records' order
BY_KEY = {m.key: m for m in MEASURES + CODEC_MEASURES}
JUDGE_WORKERS = min(2, os.cpu_count() or 1)


def _digest(samples: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(samples, dtype=np.float32).tobytes()).hexdigest()


def judge_measures(judges: list[Judge], speech: bool) -> list[Measure]:
    """The judged measures of one file: a judge's own, its speech mode only on speech."""
    return [m for m in JUDGED_MEASURES if m.judge is not None and (m.judge in judges or
            (m is VISQOL_SPEECH and VISQOL.judge in judges)) and (speech or not m.speech)]


class JudgedCache:
    """``judged.json``: every judge's score by (original, decode, measure), read strictly."""

    def __init__(self, folder: CodecFolder):
        self.path = folder.root / JUDGED
        self.scores: dict[str, float] = {}
        if self.path.exists():
            self.scores = records.parse_json(self.path, "cache of judges' scores",
                                             records.mapping(value=records.number))

    @staticmethod
    def key(measure: Measure, original_digest: str, decoded: np.ndarray) -> str:
        return f"{original_digest}:{_digest(decoded)}:{measure.key}"

    def add(self, scores: dict[str, float]) -> None:
        self.scores |= scores
        atomic_write_text(self.path, json.dumps(self.scores, indent=1, sort_keys=True) + "\n")


def _judge(task: tuple[str, str, str, int]) -> float:
    """One judge's score of one decode (in a worker process): measure key, original and decode paths, rate."""
    key, original, decoded, rate = task
    return float(BY_KEY[key].compute(Pair(read_audio(original)[0][:, 0], read_audio(decoded)[0][:, 0], rate)))


def judge_all(tasks: dict[str, tuple[str, str, str, int]], cache: JudgedCache) -> None:
    """Score every task not in the cache, in :data:`JUDGE_WORKERS` processes, saving as they finish."""
    todo = {key: task for key, task in tasks.items() if key not in cache.scores}
    if not todo:
        return
    if JUDGE_WORKERS == 1 or len(todo) == 1:
        for key, task in todo.items():
            cache.add({key: _judge(task)})
        return
    with ProcessPoolExecutor(JUDGE_WORKERS, mp_context=multiprocessing.get_context("spawn")) as pool:
        for key, score in zip(todo, pool.map(_judge, todo.values())):
            cache.add({key: score})


def measure_run(folder: CodecFolder, judges: list[Judge], statuses: list[ModelStatus] | None = None) -> list[dict]:
    """Score every decode of the run (``statuses``: the models as they ended; else the runs record)
    and write the table of measures: the formulas at every checkpoint, the judges at each model's last."""
    config = folder.read_config()
    statuses = folder.read_runs(config) if statuses is None else statuses
    originals = {f["name"]: read_audio(folder.test_file(f["name"]))[0][:, 0] for f in config.test_files}
    digests = {name: _digest(samples) for name, samples in originals.items()}
    cache = JudgedCache(folder)
    rows, tasks, judged = [], {}, []
    for status in statuses:
        model = status.model
        last = max(status.checkpoints, default=None)
        for name in config.file_names():
            group = config.group_of(name)
            speech = group in config.speech or "*" in config.speech
            where = {"file": name, "group": group, "loss": model.loss, "width": model.width,
                     "train_seconds": model.train_seconds, "seed": model.seed}
            for step in status.checkpoints:
                path = folder.decode(model, name, step)
                decoded = read_audio(path)[0][:, 0]
                pair = Pair(originals[name], decoded, config.sample_rate)
                rows.extend({**where, "step": step, "metric": m.key, "value": m.compute(pair)}
                            for m in FORMULAS if speech or not m.speech)
                if step != last:
                    continue
                for measure in judge_measures(judges, speech):
                    key = cache.key(measure, digests[name], decoded)
                    tasks[key] = (measure.key, str(folder.test_file(name)), str(path), config.sample_rate)
                    judged.append({**where, "step": step, "metric": measure.key, "key": key})
    judge_all(tasks, cache)
    rows.extend({**{k: v for k, v in row.items() if k != "key"}, "value": cache.scores[row["key"]]} for row in judged)
    order = {m.key: i for i, m in enumerate(FORMULAS + JUDGED_MEASURES)}
    models = {status.model: i for i, status in enumerate(statuses)}
    files = {name: i for i, name in enumerate(config.file_names())}
    rows.sort(key=lambda r: (models[CodecModel(r["loss"], r["width"], r["train_seconds"], r["seed"])],
                             files[r["file"]], r["step"], order[r["metric"]]))
    rows = [row for row in rows if _recordable(row["metric"], row["value"])]
    folder.write_metrics(rows)
    return rows


def _recordable(key: str, value: float) -> bool:
    """Whether the records may hold ``value`` (a value its measure never records is left out,
    so the run's own table never reads as damaged)."""
    declared = BY_KEY.get(key)
    return declared is None or declared.recordable(value)
