"""key=value options for the verbs that read a finished run (`sample`, `report`), like `train`'s
overrides: each verb declares its options once, and `--help` and the checks come from that."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ganlab.errors import ConfigError


@dataclass(frozen=True)
class Option:
    name: str
    default: Any
    help: str
    kind: type | tuple[type, ...] = str
    choices: tuple[Any, ...] = ()


# Options every verb that opens a run's checkpoint shares (sample, eval).
CHECKPOINT = Option("checkpoint", "last", "last, best, step_N, or a path")
DRAWING = [  # how samples are drawn from it
    Option("ema", "auto", "auto: the EMA generator when the run has one; true / false", (bool, str),
           ("auto", True, False)),
    Option("seed", 0, "seed of the latent codes", int),
    Option("device", "auto", "auto, cpu, cuda, cuda:N"),
    Option("allowed_targets", [], "modules beyond ganlab's own that the run's stored config may build, as "
           "train's allowed_targets (never taken from the checkpoint)", list),
]


def parse(verb: str, args: list[str], options: list[Option], positional: str | None = None) -> dict[str, Any]:
    """The options' values from `key=value` arguments (YAML values: `labels=[3,5]`); arguments without
    `=` go to the `positional` option as a list. Unknown keys and wrong types are ConfigErrors."""
    known = {o.name: o for o in options}
    values = {o.name: o.default for o in options}
    loose = []
    for arg in args:
        if arg.startswith("-") and "=" not in arg:
            raise ConfigError(f"`ganlab {verb}` takes key=value options, not {arg!r}: write e.g. "
                              f"{arg.lstrip('-')}=VALUE. See `ganlab {verb} --help`.")
        if "=" not in arg or (positional and ("/" in arg.split("=", 1)[0] or Path(arg).exists())):
            loose.append(arg)  # a path, even one with '=' in it (sweep job folders are named key=value)
            continue
        key, raw = arg.split("=", 1)
        if key not in known:
            raise ConfigError(f"{key} is not an option of `ganlab {verb}`; its options are {', '.join(known)}. "
                              f"See `ganlab {verb} --help`.")
        if not raw.strip():
            raise ConfigError(f"{key}= is empty; give it a value ({known[key].help}) or leave {key} out.")
        values[key] = _convert(verb, known[key], raw)
    if loose:
        if positional is None:
            raise ConfigError(f"`ganlab {verb}` takes key=value options, not {loose[0]!r}; e.g. run={loose[0]}.")
        values[positional] = [*(values[positional] or []), *loose]
    return values


def _convert(verb: str, option: Option, raw: str) -> Any:
    """The YAML value of `raw` when the option takes its type, else the raw text for string options."""
    kinds = option.kind if isinstance(option.kind, tuple) else (option.kind,)
    try:
        value = yaml.safe_load(raw) if raw else None
    except yaml.YAMLError:
        value = raw
    if value is None and option.default is None:
        return None
    if isinstance(value, bool):
        ok = bool in kinds
    elif isinstance(value, int) and float in kinds and int not in kinds:
        value, ok = float(value), True
    else:
        ok = any(isinstance(value, k) for k in kinds if k not in (str, bool))
    if not ok and str in kinds:
        value, ok = raw, True
    if not ok:
        wanted = " or ".join(k.__name__ for k in kinds)
        raise ConfigError(f"{option.name}={raw!r} must be {wanted} for `ganlab {verb}` ({option.help}).")
    if option.choices and value not in option.choices:
        raise ConfigError(f"{option.name}={raw!r} is not one of {', '.join(map(str, option.choices))} "
                          f"({option.help}).")
    return value


def usage(verb: str, summary: str, options: list[Option], examples: list[str]) -> str:
    lines = [f"usage: ganlab {verb} key=value ...", "", summary, "", "Options:"]
    lines += [f"  {o.name + '=' + _shown(o.default):<24} {o.help}" for o in options]
    lines += ["", "Examples:", *(f"  {e}" for e in examples)]
    return "\n".join(lines)


def _shown(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def read(verb: str, args: list[str], options: list[Option], summary: str, examples: list[str],
         positional: str | None = None) -> dict[str, Any] | None:
    """The verb's options, or None after printing its help (-h / --help). `run=`, where the verb
    has it, is required."""
    if args and args[0] in ("-h", "--help"):
        print(usage(verb, summary, options, examples))
        return None
    values = parse(verb, args, options, positional)
    if "run" in values and values["run"] is None:
        raise ConfigError(f"ganlab {verb} needs run=DIR (a run directory under outputs/, or a checkpoint file).")
    return values
