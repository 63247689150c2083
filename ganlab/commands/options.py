"""key=value options for the verbs that read a finished run (`sample`, `eval`, `report`), like
`train`'s overrides: each verb declares its options once, as a dataclass (defaults, types, choices,
help), and the parser, `--help`, the checks and the verb's Python signature all come from that."""

from __future__ import annotations

import functools
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, get_args, get_type_hints

import yaml

from ganlab.errors import ConfigError


@dataclass(frozen=True)
class Option:
    """One row of a verb's options, as the parser and --help see it (made from a dataclass field)."""

    name: str
    default: Any
    help: str
    kind: type | tuple[type, ...] = str
    choices: tuple[Any, ...] = ()


def option(default: Any, help: str, choices: tuple[Any, ...] = ()) -> Any:
    """A field of a verb's options dataclass: its default, its --help text, and the values it allows."""
    metadata = {"help": help, "choices": choices}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def rows(options_class: type) -> list[Option]:
    """The parser's rows of a verb's options dataclass: its fields' names, defaults, help, types and choices."""
    hints = get_type_hints(options_class)
    made = []
    for f in fields(options_class):
        kinds = tuple(k for k in get_args(hints[f.name]) or (hints[f.name],) if k is not type(None))
        default = f.default_factory() if f.default is MISSING else f.default
        made.append(Option(f.name, default, f.metadata["help"], kinds if len(kinds) > 1 else kinds[0],
                           f.metadata["choices"]))
    return made


def takes(options_class: type) -> Callable:
    """A verb's function called with any of `options_class`'s fields as keywords (the first also by
    position): the defaults and types live in the dataclass only, and a misspelt keyword is a TypeError."""
    def wrap(function: Callable) -> Callable:
        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            chosen = options_class(*args, **kwargs)
            return function(**{f.name: getattr(chosen, f.name) for f in fields(chosen)})

        call.options = options_class
        return call

    return wrap


@dataclass
class RunOptions:
    """The options of every verb that opens a run's checkpoint and draws from it (sample, eval)."""

    run: str | None = option(None, "the run directory (or a checkpoint file)")
    checkpoint: str = option("last", "last, best, step_N, or a path")
    ema: bool | str = option("auto", "auto: the EMA generator when the run has one; true / false", ("auto", True, False))
    seed: int = option(0, "seed of the latent codes")
    device: str = option("auto", "auto, cpu, cuda, cuda:N")
    allowed_targets: list = option([], "modules beyond ganlab's own that the run's stored config may build, as "
                                   "train's allowed_targets (never taken from the checkpoint)")
    # diffusion and flow runs: how samples are drawn (default: the run's model.objective settings)
    sampler: str | None = option(None, "diffusion: ddim or ddpm; flow: euler or heun (default: the run's)")
    steps: int | None = option(None, "diffusion and flow: sampling steps, e.g. steps=25 (default: the run's)")
    guidance: float | None = option(None, "class-conditional diffusion and flow: classifier-free guidance scale "
                                          "(1: plain conditional; default: the run's)")
    eta: float | None = option(None, "DDIM's noise (0: deterministic; default: the run's)")


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


def usage(verb: str, summary: str, options: list[Option], examples: list[str], positional: str | None = None) -> str:
    takes = f"{positional.upper()}... [key=value ...]" if positional else "key=value ..."  # report takes folders
    lines = [f"usage: ganlab {verb} {takes}", "", summary, "", "Options:"]
    lines += [f"  {o.name + '=' + _shown(o.default):<24} {o.help}" for o in options]
    lines += ["", "Examples:", *(f"  {e}" for e in examples)]
    return "\n".join(lines)


def _shown(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def read(verb: str, args: list[str], options_class: type, summary: str, examples: list[str],
         positional: str | None = None) -> dict[str, Any] | None:
    """The verb's options (the fields of `options_class`), or None after printing its help
    (-h / --help). `run=`, where the verb has it, is required."""
    options = rows(options_class)
    if args and args[0] in ("-h", "--help"):
        print(usage(verb, summary, options, examples, positional))
        return None
    values = parse(verb, args, options, positional)
    if "run" in values and values["run"] is None:
        raise ConfigError(f"ganlab {verb} needs run=DIR (a run directory under outputs/, or a checkpoint file).")
    return values
