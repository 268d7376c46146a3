"""Every number a user can give pal, at every door, is finite and bounded, or one line.

The cases are generated: from the declared settings (:func:`pal.run.config.setting` and a sweep's own,
each with its :class:`~pal.run.config.Number` or :class:`~pal.run.config.NumberList` check) and from the
parsers' numeric flags, so a setting added later is tried here without a line of this file
changing. Each bad value goes through ``pal run --config`` (TOML), ``pal run`` and ``pal sweep``
flags, and ``pal listen``'s flags, and must give exit 2, one line, no traceback and no folder.
"""

import datetime
import math
import re

import numpy as np
import pytest
import soundfile

import pal.run.experiment
import pal.listening.server
import pal.sweeps
import pal.sweeps.run
from pal.core.audio import Clip
from pal.cli import build_parser, integer, main
from pal.core.errors import UserError
from pal.run.config import MAX_SEEDS, Number, NumberList, settings_fields
from pal.sweeps import SweepSettings
from pal.sweeps.plan import MANY_WINDOWS, own_settings, plan_windows, window_offsets, windows_of

from helpers import sine

NOT_FINITE = [math.nan, math.inf, -math.inf]
ABSURD = 10**12


def declared_checks() -> dict[str, tuple[str, object]]:
    """Every declared setting by name: ``(flag or "", check)``; ``pal run``'s and a sweep's own."""
    checks = {}
    for declared in settings_fields():
        flag = declared.metadata["flag"]
        checks[declared.name] = ("" if flag == "" else flag or "--" + declared.name.replace("_", "-"),
                                 declared.metadata["check"])
    for declared in own_settings():
        checks[declared.name] = (declared.metadata["flag"], declared.metadata["check"])
    return checks


def outside(number: Number) -> list:
    """Just below and just above the bounds, and an absurd value when that is above them too."""
    below = number.low if number.low_excluded else number.low - 1
    above = number.high if number.high_excluded else number.high + 1
    return [number.kind(below), number.kind(above)] + ([number.kind(ABSURD)] if ABSURD > number.high else [])


def inside(number: Number) -> list:
    """The bounds themselves, or the nearest values inside them where a bound is excluded."""
    nudge = 1 if number.kind is int else 1e-9
    return [number.kind(number.low + nudge if number.low_excluded else number.low),
            number.kind(number.high - nudge if number.high_excluded else number.high)]


def out_of_range(check) -> list:
    """Values of the right shape that ``check`` must refuse: not finite, or outside its bounds
    (for a list: too few, too many, repeated where values must differ)."""
    if isinstance(check, Number):
        return [*NOT_FINITE, *outside(check)]
    fine = inside(check.item)[0]
    values = [[value] * check.min_items for value in [*NOT_FINITE, *outside(check.item)]]
    values.append([fine] * (check.min_items - 1))
    spread = np.linspace(*inside(check.item), check.max_items + 1)
    values.append([check.item.kind(v) for v in spread])  # one too many
    return values + ([[fine, fine]] if check.unique else [])


def bad_toml_values(check) -> list:
    """Values a TOML file can hold that ``check`` must refuse: out of range, or of the wrong type."""
    if isinstance(check, Number):
        return [*out_of_range(check), "12", "ten", [inside(check)[0]], True, {"a": 1}, datetime.date(1979, 5, 27)]
    if isinstance(check, NumberList):
        size = check.min_items
        return [*out_of_range(check), [True] * size, ["1"] * size, inside(check.item)[0], "ten", {"a": 1},
                datetime.date(1979, 5, 27)]
    # Text, a list of texts, or true/false: numbers and tables are never one of these.
    values = [1, 1.5, *NOT_FINITE, [1, 2], {"a": 1}, datetime.date(1979, 5, 27)]
    return values if check.__name__ == "_boolean" else values + [True]


def bad_flag_texts(check) -> list[str]:
    """What may be typed after a flag that ``check`` must refuse."""
    def text(value) -> str:
        if isinstance(value, list):
            return ",".join(map(text, value))
        return toml_literal(value) if isinstance(value, float) and not math.isfinite(value) else str(value)

    wrong = ["ten", "", "true", "0x10"] + (["1,2"] if isinstance(check, Number) else ["1,,x"])
    return [*map(text, out_of_range(check)), *wrong]


def toml_literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_literal(v)}" for k, v in value.items()) + " }"
    return value.isoformat()  # a date


def short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


TOML_CASES = [pytest.param(name, toml_literal(value), id=short(f"{name}={toml_literal(value)}"))
              for name, (_, check) in declared_checks().items() if name in {f.name for f in settings_fields()}
              for value in bad_toml_values(check)]
TOML_CASES += [pytest.param("iteration", "5", id="an unknown key"), pytest.param("seed", "-1", id="seed=-1"),
               pytest.param("seed", "nan", id="seed=nan"), pytest.param("out", "5", id="out=5")]


@pytest.fixture
def tone(tmp_path):
    path = tmp_path / "tone.wav"
    soundfile.write(str(path), sine(440, 1.0, 11025), 11025)
    return path


@pytest.fixture
def nothing_starts(monkeypatch):
    """A case that wrongly passes every check fails here instead of training or serving."""
    def started(*args, **kwargs):
        raise AssertionError("the command started: a bad value was accepted")

    monkeypatch.setattr(pal.run.experiment, "_run_locked", started)
    monkeypatch.setattr(pal.sweeps.run, "_run_locked", started)
    monkeypatch.setattr(pal.listening.server, "serve", started)


def exit_status(argv: list[str]) -> int:
    """``pal argv``'s exit status: what :func:`main` returns, or the usage error's exit."""
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


def assert_refused_in_one_line(code: int, err: str) -> None:
    """Exit 2 and one line: ``pal: error: ...``, or argparse's ``pal run: error: ...`` for a usage error."""
    assert code == 2 and re.match(r"pal( \w+)?: error: ", err) and err.count("\n") == 1 and "Traceback" not in err, err


@pytest.mark.parametrize("key, literal", TOML_CASES)
def test_a_bad_toml_value_is_one_line_and_writes_nothing(key, literal, tone, tmp_path, nothing_starts, capsys):
    config = tmp_path / "bad.toml"
    config.write_text(f"{key} = {literal}\n")
    out = tmp_path / "run"
    code = exit_status(["run", str(tone), "--config", str(config), "--out", str(out), "--no-progress"])
    assert_refused_in_one_line(code, capsys.readouterr().err)
    assert not out.exists()


def numeric_flags(command: str) -> dict[str, object]:
    """``command``'s flags that take numbers, each with its declared check (``None`` if undeclared)."""
    parser = build_parser()
    subparsers = next(action for action in parser._actions if action.dest == "command")
    declared = {flag: check for flag, check in declared_checks().values() if flag}
    flags = {}
    for action in subparsers.choices[command]._actions:
        for flag in action.option_strings:
            if flag in declared and isinstance(declared[flag], (Number, NumberList)):
                flags[flag] = declared[flag]
            elif action.type in (integer, float):
                flags[flag] = None
    return flags


# What no numeric flag takes; 0 is refused too, except by those that take it (a seed, an offset).
UNDECLARED_BAD = ["nan", "inf", "-inf", "-1", "1e12", "1000000000000", "ten", "", "1,2", "0x10"]
ZERO_TAKEN = {"--seed"}


def flag_cases(command: str) -> list:
    cases = []
    for flag, check in numeric_flags(command).items():
        texts = bad_flag_texts(check) if check else UNDECLARED_BAD + ([] if flag in ZERO_TAKEN else ["0"])
        cases += [pytest.param(flag, text, id=short(f"{flag}={text}")) for text in dict.fromkeys(texts)]
    return cases


@pytest.mark.parametrize("flag, text", flag_cases("run"))
def test_a_bad_number_for_pal_run_is_one_line_and_writes_nothing(flag, text, tone, tmp_path, nothing_starts, capsys):
    out = tmp_path / "run"
    code = exit_status(["run", str(tone), "--out", str(out), "--no-progress", f"{flag}={text}"])
    assert_refused_in_one_line(code, capsys.readouterr().err)
    assert not out.exists()


@pytest.mark.parametrize("flag, text", flag_cases("sweep"))
def test_a_bad_number_for_pal_sweep_is_one_line_and_writes_nothing(flag, text, tone, tmp_path, nothing_starts,
                                                                   capsys):
    out = tmp_path / "sweep"
    code = exit_status(["sweep", str(tone), "--out", str(out), "--no-progress", f"{flag}={text}"])
    assert_refused_in_one_line(code, capsys.readouterr().err)
    assert not out.exists()


@pytest.mark.parametrize("flag, text", flag_cases("listen"))
def test_a_bad_number_for_pal_listen_is_one_line(flag, text, listening_run, nothing_starts, capsys):
    runs = (listening_run / "runs.json").read_bytes()
    code = exit_status(["listen", str(listening_run), f"{flag}={text}"])
    assert_refused_in_one_line(code, capsys.readouterr().err)
    assert (listening_run / "runs.json").read_bytes() == runs


def test_every_command_with_numbers_is_covered():
    assert {"--iterations", "--checkpoint-every", "--seeds", "--offset", "--learning-rate", "--betas",
            "--seed"} <= set(numeric_flags("run"))
    assert {"--windows-per-clip", "--runs-per-task", "--threads-per-task", "--workers"} <= set(numeric_flags("sweep"))
    assert {"--port", "--checkpoint"} <= set(numeric_flags("listen"))
    assert {"sample_rate", "window"} <= {param.values[0] for param in TOML_CASES}


@pytest.mark.parametrize("name", [name for name, (_, check) in declared_checks().items()
                                  if isinstance(check, (Number, NumberList))])
def test_each_bound_is_where_its_check_refuses(name):
    """The values just inside the bounds pass and the ones just outside do not: the refusals
    above are at the bounds, not anywhere in the range."""
    check = declared_checks()[name][1]
    number = check.item if isinstance(check, NumberList) else check
    for value in inside(number):
        given = [value] * check.min_items if isinstance(check, NumberList) else value
        assert check(given, name, "test") == given
    for value in outside(number):
        assert not number.accepts(value)


@pytest.mark.parametrize("loss", ["perceptual:taps=1e12", "masked:full_scale_db=1e300", "perceptual:taps=-1",
                                  "perceptual:n_bands=0", "perceptual:stride=nan", "mse:reduction=7"])
def test_loss_options_that_cannot_be_honoured_are_one_line(loss, tone, tmp_path, nothing_starts, capsys):
    out = tmp_path / "run"
    code = exit_status(["run", str(tone), "--losses", loss, "--out", str(out), "--no-progress"])
    assert_refused_in_one_line(code, capsys.readouterr().err)
    assert not out.exists()


# -- absurd plans of windows ----------------------------------------------------------------------


@pytest.fixture
def long_clip(tmp_path):
    """Two seconds at 11025 Hz: 22050 - 8192 + 1 = 13859 window starts."""
    path = tmp_path / "long.wav"
    soundfile.write(str(path), sine(440, 2.0, 11025), 11025)
    return path


def test_window_offsets_take_every_start_when_asked_for_more_windows_than_starts():
    # The formula itself, (k + 1/2) / count of the usable span rounded, for every k.
    for total, count in ((8192 + 50, 51), (8192 + 50, 400), (8192, 3), (8192 + 7, 10_000)):
        usable = total - 8192
        expected = sorted({int(round(usable * (k + 0.5) / count)) for k in range(count)})
        assert window_offsets(total, 8192, count) == expected
        assert windows_of(total, 8192, count) == len(expected)
    assert window_offsets(22050, 8192, 10**12) == list(range(22050 - 8192 + 1))  # at once, not 10^12 steps


def test_a_clip_cut_into_ten_thousand_windows_is_refused_naming_it(long_clip):
    with pytest.raises(UserError) as refused:
        plan_windows([long_clip], SweepSettings(windows_per_clip=MANY_WINDOWS))
    message = str(refused.value)
    assert str(long_clip) in message and f"{MANY_WINDOWS} windows" in message and "--allow-many-windows" in message
    # fewer windows than that may be planned without the flag: the clip's starts bound the count
    assert windows_of(22050, 8192, MANY_WINDOWS - 1) == MANY_WINDOWS - 1
    with pytest.raises(UserError, match="13859 windows"):
        plan_windows([long_clip], SweepSettings(windows_per_clip=10**7))


def test_the_flag_allows_many_windows(long_clip, monkeypatch):
    import pal.sweeps.plan as plan

    prepared = []

    def light_clip(name, samples, rate, source, sample_rate, window, seconds, pad):  # no 330 MB of targets
        prepared.append(seconds)
        return Clip(name, np.zeros(1, np.float32), source, int(round(seconds * sample_rate)), False)

    monkeypatch.setattr(plan, "prepare_clip", light_clip)
    windows, _ = plan_windows([long_clip], SweepSettings(windows_per_clip=MANY_WINDOWS), allow_many_windows=True)
    assert len(windows) == MANY_WINDOWS == len(prepared)
    assert [w.offset_samples for w in windows] == window_offsets(22050, 8192, MANY_WINDOWS)


def test_pal_sweep_refuses_many_windows_in_one_line_and_passes_the_flag_on(long_clip, tmp_path, monkeypatch, capsys):
    out = tmp_path / "sweep"
    code = main(["sweep", str(long_clip), "--out", str(out), "--windows-per-clip", str(MANY_WINDOWS), "--no-progress"])
    err = capsys.readouterr().err
    assert_refused_in_one_line(code, err)
    assert str(long_clip) in err and "--allow-many-windows" in err and not out.exists()
    given = []
    monkeypatch.setattr(pal.sweeps, "run_sweep", lambda *args, **options: given.append(options) or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["sweep", str(long_clip), "--out", str(out), "--windows-per-clip", str(MANY_WINDOWS),
              "--allow-many-windows"])
    assert given[0]["overrides"].many_windows is True


def test_many_seeds_are_refused_but_a_thousand_taken():
    check = dict((name, check) for name, (_, check) in declared_checks().items())["seeds"]
    assert check(list(range(MAX_SEEDS)), "seeds", "test") == list(range(MAX_SEEDS))
    with pytest.raises(UserError, match="--seeds must be 1 to 1000 different values"):
        check(list(range(MAX_SEEDS + 1)), "seeds", "command line")
