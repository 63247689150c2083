"""The `ganlab` command: the table of verbs. `train` goes to Hydra through `launch.py` (vetted
before Hydra acts); the verbs that read finished runs get their key=value options here.

Exit codes: 0 done; 2 bad input (one paragraph, before any work); 3 training diverged; 4 a fault
of the machine (disk full); 130 / 143 stopped by SIGINT / SIGTERM, before or during training.
"""

from __future__ import annotations

import os
import signal
import sys

from ganlab.commands.session import Session
from ganlab.errors import EXIT_CONFIG, EXIT_FAULT


def main(argv: list[str] | None = None) -> None:
    try:
        _main(argv)
    except BrokenPipeError:  # `ganlab report --help | head`: the reader left; nothing more to say
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        sys.exit(0)


def _main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    session = _stop_cleanly_on_signals(args[0] if args else "")
    if not args or args[0] in ("-h", "--help", "help"):
        from ganlab.commands.usage import general_help

        print(general_help())
        return
    verb, rest = args[0], args[1:]
    if verb == "train" and any(a in ("-h", "--help") for a in rest):
        from ganlab.commands.usage import train_help

        print(train_help())
        return
    if verb == "train":
        from ganlab.commands.launch import train

        train(rest, session)
    elif verb == "resume":
        _resume(rest, session)
    elif verb == "buildable":  # the closed set of names a config's _target_ may give
        from ganlab.trust.registry import listing

        print(listing())
    elif verb in READERS:
        _read_run(verb, rest)
    else:
        print(f"ganlab: unknown command {verb!r}; the commands are: train, resume, {', '.join(READERS)}, buildable. See `ganlab --help`.",
              file=sys.stderr)
        sys.exit(EXIT_CONFIG)


def _resume(args: list[str], session: Session) -> None:
    """`ganlab resume FOLDER [overrides]`: continue a run, or every job of a sweep (its folder holds
    sweep.json or numbered job folders)."""
    from pathlib import Path

    from ganlab.commands.launch import train

    if not args or "=" in args[0]:
        print("ganlab: error: ganlab resume FOLDER [key=value ...]: name the run or sweep folder to continue, e.g. "
              "ganlab resume outputs/multirun/2026-12-05/10-00-00.", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    folder, rest = Path(args[0]).expanduser(), args[1:]
    is_run = (folder / "checkpoints").is_dir() or (folder / ".hydra").is_dir()
    if is_run:
        train(["resume=true", f"hydra.run.dir={folder}", *rest], session)
    else:
        train(["-m", "resume=true", f"hydra.sweep.dir={folder}", *rest], session)


READERS = {"sample": "ganlab.commands.sample", "eval": "ganlab.commands.evaluate", "report": "ganlab.commands.report"}  # verbs that read finished runs


def _read_run(verb: str, args: list[str]) -> None:
    """A verb with key=value options; bad input is one paragraph and exit 2, as for train."""
    import importlib
    import logging

    from ganlab.errors import ConfigError

    from ganlab.records.safe_files import disk_full, is_disk_full

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        importlib.import_module(READERS[verb]).main(args)
    except ConfigError as exc:
        print(f"ganlab: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    except (OSError, RuntimeError) as exc:
        if not is_disk_full(exc):
            raise
        print(f"ganlab: fault: ganlab {verb}: {disk_full(getattr(exc, 'filename', None) or '.', trained=None)}",
              file=sys.stderr)
        sys.exit(EXIT_FAULT)


def _stop_cleanly_on_signals(verb: str = "train") -> Session:
    """SIGINT / SIGTERM before training starts: stop at once with 130 / 143 and one line, no
    traceback. Nothing needs saving yet, and raising inside an import (torch's, say) could abort
    the interpreter, so the handler exits directly. The training loop installs its own handlers,
    which finish the step and save last.pt first. Returns the session whose `training_in` the
    handler reports."""

    session = Session()
    main_pid = os.getpid()

    def stop(signum, _frame):
        if os.getpid() != main_pid:  # a data loader's worker: the main process says it, once
            os._exit(128 + signum)
        if verb in READERS:
            text = (f"stopped by signal {signum}; ganlab {verb} left no partial output (each output is written whole "
                    "under its final name, or not at all).")
        elif session.training_in is None:
            text = f"stopped by signal {signum} before training started; nothing was trained."
        else:  # after the loop ended (a failed process group under torchrun, say): checkpoints exist
            text = (f"stopped by signal {signum} after training had begun in {session.training_in}; its newest "
                    f"checkpoint is kept. Continue with: ganlab train resume=true hydra.run.dir={session.training_in}")
        os.write(2, f"\nganlab: {text}\n".encode())
        os._exit(128 + signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    return session
