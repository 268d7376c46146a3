"""The codec run folder: the one module that lays it out and reads its records back.

Its records have the names of a run folder's (:mod:`pal.run.folder` spells them: ``RUNS``,
``METRICS``, ``STATE``, ``PAGE``, ``LOSSES``, ``SEED``), beside its own configuration::

    codec.json              the configuration, the corpus (every file's name, group and hash), the identity
    RUNS                    every model's status: loss, width, training seconds, seed, how it ended
    METRICS                 one row per (test file, model, checkpoint step, measure)
    STATE                   the training state (every model's weights, Adam's), for a resume
    PAGE                    the page (pal.report.codec_page)
    LISTENING_SUMMARY, LISTENING_IMAGE     the listening test's summary, as pal listen --results last wrote it
    test/<file>.wav         each test file as the codec hears it (mono, at the codec's rate)
    models/<loss>/w<W>-<T>/SEED<S>/LOSSES                the loss at every step
    models/<loss>/w<W>-<T>/SEED<S>/<file>/step-<N>.wav   each test file decoded at step N

``<T>`` is the training data: ``all`` or seconds (``30s``). Every record read back is typed and
checked; a damaged one is a :class:`~pal.core.records.DamagedRecord` naming the file and line.
The listening test's ratings (``pal.listening.store``) live beside these, as in a run folder.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core import records
from ..core.errors import UserError
from ..core.files import atomic_write_text
from ..core.names import folder_name, link
from .segments import ALL
from ..measures.registry import BY_KEY
from ..run.folder import (LISTENING_IMAGE, LISTENING_SUMMARY, LOSSES, METRICS, PAGE, RUNS, SEED, STATE,
                          identity_digest, load_state, read_losses_csv, save_state, write_json, write_losses_csv)
from .train import STATE_FORMAT, CodecModel, every_model

CONFIG, TEST, MODELS = "codec.json", "test", "models"
ENTRIES = (CONFIG, RUNS, METRICS, STATE, PAGE, TEST, MODELS)
METRIC_COLUMNS = ("file", "group", "loss", "width", "train_seconds", "seed", "step", "metric", "value")
_STEP_NAME = re.compile(r"^step-(\d{6,})\.wav$")


def data_name(amount) -> str:
    """How a model's training data is named in folders and labels: ``all`` or ``30s``."""
    return ALL if amount in (None, ALL) else f"{amount:g}s"


def model_label(model: CodecModel) -> str:
    """``auditory/w16-30s/`` and the seed's folder name: a model as a user reads it."""
    return f"{model.loss}/w{model.width}-{data_name(model.train_seconds)}/{SEED}{model.seed}"


@dataclass
class ModelStatus:
    """One model's record in the runs record."""

    loss: str
    width: int
    train_seconds: float | None  # None: the whole corpus
    seed: int
    status: str = "running"
    reason: str | None = None
    stopped_at: int | None = None
    final_loss: float | None = None
    seconds: float | None = None
    checkpoints: list[int] = field(default_factory=list)

    CHECKS = {
        "loss": records.text, "width": records.integer(1), "train_seconds": records.optional(records.finite_number),
        "seed": records.integer(0), "status": records.one_of("running", "finished", "failed"),
        "reason": records.optional(records.text), "stopped_at": records.optional(records.integer(0)),
        "final_loss": records.optional(records.number), "seconds": records.optional(records.number),
        "checkpoints": records.list_of(records.integer(1), unique=True),
    }

    @property
    def model(self) -> CodecModel:
        return CodecModel(self.loss, self.width, self.train_seconds, self.seed)


@dataclass
class CodecRecord:
    """``codec.json`` read back: the settings the page and the readers need, and the corpus."""

    losses: list[str]
    seeds: list[int]
    width: list[int]
    train_seconds: list
    steps: int
    checkpoint_every: int
    sample_rate: int
    bottleneck: int
    test_files: list[dict]  # name, group, source, sha256, seconds, credit
    train_files: list[dict]
    identity: dict
    speech: list[str] = field(default_factory=lambda: ["speech"])
    latent_rate: float | None = None
    parameters: dict = field(default_factory=dict)  # by width (as text): weights of one codec
    data_seconds: dict = field(default_factory=dict)  # by data name: seconds of audio trained on
    version: str | None = None

    CHECKS = {
        "losses": records.list_of(records.text, unique=True, nonempty=True),
        "seeds": records.list_of(records.integer(0), unique=True, nonempty=True),
        "width": records.list_of(records.integer(1), unique=True, nonempty=True),
        "train_seconds": records.list_of(lambda v: v if v == ALL else records.finite_number(v), nonempty=True),
        "steps": records.integer(1), "checkpoint_every": records.integer(1), "sample_rate": records.integer(1),
        "bottleneck": records.integer(1),
        "test_files": records.list_of(records.mapping(), nonempty=True),
        "train_files": records.list_of(records.mapping(), nonempty=True),
        "identity": records.mapping(), "speech": records.list_of(records.text),
        "latent_rate": records.optional(records.finite_number), "parameters": records.mapping(),
        "data_seconds": records.mapping(value=records.finite_number), "version": records.optional(records.text),
    }

    def models(self) -> list[CodecModel]:
        """Every model, in the order of the training and of the runs record."""
        return every_model(self.width, self.train_seconds, self.losses, self.seeds)

    def checkpoints(self) -> list[int]:
        return sorted({*range(self.checkpoint_every, self.steps + 1, self.checkpoint_every), self.steps})

    def file_names(self) -> list[str]:
        return [f["name"] for f in self.test_files]

    def group_of(self, name: str) -> str:
        return next(f["group"] for f in self.test_files if f["name"] == name)


@dataclass(frozen=True)
class CodecFolder:
    """Every path of one codec run folder, and its records read and written as Python values."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    config = property(lambda self: self.root / CONFIG)
    runs = property(lambda self: self.root / RUNS)
    metrics = property(lambda self: self.root / METRICS)
    state = property(lambda self: self.root / STATE)
    page = property(lambda self: self.root / PAGE)
    listening_summary = property(lambda self: self.root / LISTENING_SUMMARY)
    listening_image = property(lambda self: self.root / LISTENING_IMAGE)

    def test_file(self, name: str) -> Path:
        return self.root / TEST / f"{folder_name(name.replace('/', '--'))}.wav"

    def model(self, model: CodecModel) -> Path:
        return (self.root / MODELS / folder_name(model.loss) / f"w{model.width}-{data_name(model.train_seconds)}"
                / f"{SEED}{model.seed}")

    def losses(self, model: CodecModel) -> Path:
        return self.model(model) / LOSSES

    def decode(self, model: CodecModel, name: str, step: int) -> Path:
        return self.model(model) / folder_name(name.replace("/", "--")) / f"step-{step:06d}.wav"

    def decodes_on_disk(self, model: CodecModel, name: str) -> list[int]:
        folder = self.decode(model, name, 1).parent
        return sorted(int(m.group(1)) for p in folder.glob("step-*.wav") if (m := _STEP_NAME.match(p.name)))

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def link(self, path: Path) -> str:
        """``path`` as the page links it: relative, URL-encoded."""
        return link(self.relative(path))

    def is_run(self) -> bool:
        return self.config.is_file()

    # -- records -------------------------------------------------------------------------------

    def write_config(self, record: dict) -> None:
        write_json(self.config, record)

    def read_config(self) -> CodecRecord:
        if not self.is_run():
            raise UserError(f"{self.root}: not a codec run folder (no {CONFIG})")
        try:
            return records.typed(CodecRecord, records.read_json(self.config, "codec configuration"),
                                 CodecRecord.CHECKS)
        except records.BadValue as error:
            raise records.DamagedRecord(self.config, "codec configuration", str(error)) from None

    def read_identity(self) -> dict:
        """The identity the run was started under (what decides whether a command resumes it)."""
        return self.read_config().identity

    def write_runs(self, statuses: list[ModelStatus]) -> None:
        write_json(self.runs, [asdict(status) for status in statuses])

    def read_runs(self, config: CodecRecord | None = None) -> list[ModelStatus]:
        if not self.runs.exists():
            return []

        def parse(value) -> list[ModelStatus]:
            records.expect(isinstance(value, list), "a list of models", value)
            statuses = [records.typed(ModelStatus, entry, ModelStatus.CHECKS, f" of model {i + 1}")
                        for i, entry in enumerate(value)]
            if config is not None:
                models = config.models()
                records.expect([s.model for s in statuses] == models, f"the {len(models)} models of the run",
                               f"{len(statuses)} other models")
                planned = set(config.checkpoints())
                for i, status in enumerate(statuses):
                    records.expect(set(status.checkpoints) <= planned, f"model {i + 1}'s checkpoints among the "
                                   "steps the run saves", status.checkpoints)
            return statuses

        return records.parse_json(self.runs, "codec model record", parse)

    def write_metrics(self, rows: list[dict]) -> None:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=METRIC_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({**row, "train_seconds": data_name(row["train_seconds"]),
                          "value": repr(float(row["value"]))} for row in rows)
        atomic_write_text(self.metrics, text.getvalue())

    def read_metrics(self, config: CodecRecord | None = None) -> list[dict]:
        """The table of measures' rows, typed (``train_seconds`` ``None`` for all); with ``config``, each
        must measure a test file, model and checkpoint of the run."""
        if not self.metrics.exists():
            return []
        path, what = self.metrics, "codec table of measures"
        models = set(config.models()) if config is not None else None
        files = dict((f["name"], f["group"]) for f in config.test_files) if config is not None else None
        steps = set(config.checkpoints()) if config is not None else None
        rows = []
        for line, row in records.read_csv(path, what, METRIC_COLUMNS):
            width, seed, step = (records.csv_value(path, what, line, c, row[c], int) for c in ("width", "seed", "step"))
            amount = None if row["train_seconds"] == ALL else records.csv_value(
                path, what, line, "train_seconds", row["train_seconds"].removesuffix("s"), float)
            value = records.csv_value(path, what, line, "value", row["value"], float)
            declared = BY_KEY.get(row["metric"])
            if declared is not None and not declared.recordable(value):
                raise records.DamagedRecord(path, what, f"line {line}: {row['metric']} is {value!r}, "
                                            "which the measure never records")
            typed = {**row, "width": width, "seed": seed, "step": step, "train_seconds": amount, "value": value}
            if config is not None:
                model = CodecModel(row["loss"], width, amount, seed)
                if model not in models or files.get(row["file"]) != row["group"] or step not in steps:
                    raise records.DamagedRecord(path, what, f"line {line}: not a test file, model and checkpoint "
                                                "of this run")
            rows.append(typed)
        return rows

    def write_losses(self, model: CodecModel, losses: list[float]) -> None:
        write_losses_csv(self.losses(model), losses)

    def read_losses(self, model: CodecModel):
        path = self.losses(model)
        return read_losses_csv(path) if path.exists() else None

    def read_records(self) -> tuple[CodecRecord, list[ModelStatus], list[dict]]:
        """Every record, each checked against the configuration; the first damaged one refused."""
        config = self.read_config()
        statuses, rows = self.read_runs(config), self.read_metrics(config)
        for model in config.models():
            self.read_losses(model)
        return config, statuses, rows

    # -- training state ------------------------------------------------------------------------

    def save_state(self, state: dict, identity: dict) -> None:
        save_state(self.state, state | {"run": identity_digest(identity)})

    def load_state(self, identity: dict, n_models: int, steps: int) -> dict | None:
        state = load_state(self.state)
        if state is None:
            return None
        try:
            records.expect(isinstance(state, dict), "a training state", type(state).__name__)
            records.expect(state.get("run") == identity_digest(identity), "the state of this run",
                           "the state of another run")
            records.expect(state.get("format") == STATE_FORMAT, f"format {STATE_FORMAT}", state.get("format"))
            records.integer(1, steps)(state.get("step"))
            history = state.get("history")
            records.expect(getattr(history, "shape", None) is not None
                           and tuple(history.shape) == (state["step"], n_models),
                           f"a loss history of {state['step']} steps x {n_models} models",
                           tuple(getattr(history, "shape", ())))
        except records.BadValue as error:
            raise UserError(f"{self.state}: not this run's training state ({error}); "
                            "pass --force to start the run again") from None
        return state
