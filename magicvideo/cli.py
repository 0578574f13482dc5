"""The `magicvideo` command line.

Subcommands are registered by each package through the `magicvideo.commands` entry-point group
(see pyproject.toml): an entry point names a function `add(subparsers)` that adds one parser and
sets `func` on it. This keeps `magicvideo` free of imports from `evaluation` and `flows` (DESIGN.md:
dependencies point one way) while all commands share one executable. Only the named command's
entry point is loaded (``magicvideo eval`` never imports torch for ``fvd-conventions``' parser);
``--help`` without a command loads them all.

What the user sees of a failure (issue 19):
- a bad argument or input: one line, ``magicvideo CMD: error: ...``, exit code 2, no traceback;
- any other error: one line plus the log file that holds its traceback, exit code 1;
- tracebacks of logged errors (Prefect's task and flow failures) go to that log file, not the console.
Every command logs to ``$MAGICVIDEO_LOG_DIR`` (default ``~/.cache/magicvideo/logs``), one file per run.
Third-party noise (Ray's token-auth banner, MLflow's table creation, weight-loading bars, library
warnings) is quieted unless ``--verbose``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

#: Loggers whose records reach the console without --verbose (third-party ones only reach the log file).
OWN_LOGGERS = ("magicvideo", "flows", "evaluation", "prefect.flow_runs", "prefect.task_runs")


class UserError(Exception):
    """An error the user caused (bad path, bad config): printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (the usage block is behind ``--help``)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.HelpFormatter):
    """Help that shows each option's default, unless it is None / False or the text already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("%(default)" not in text and "default" not in text and action.default not in (None, False, [])
                and action.default is not argparse.SUPPRESS and (action.option_strings or action.nargs in ("?", "*"))):
            text += " (default: %(default)s)"
        return text


def _command_of(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `command`, only that command's entry point is loaded (when it exists)."""
    parser = _Parser(prog="magicvideo", formatter_class=HelpFormatter,
                     description="MagicVideo: text-to-video latent diffusion, and the pipeline that benchmarks it.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    eps = sorted(_command_entry_points(), key=lambda e: e.name)
    for ep in [e for e in eps if e.name == command] or eps:
        ep.load()(sub)
    for name, p in sub.choices.items():
        _finish(p)
    return parser


def _command_entry_points():
    """The ``magicvideo.commands`` entry points of the installed package; from a source tree that is
    not installed (``python -m magicvideo.cli`` with the repository on PYTHONPATH, e.g. on a GPU
    machine), the same table read from the repository's pyproject.toml."""
    eps = list(entry_points(group="magicvideo.commands"))
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if eps or not pyproject.is_file():
        return eps
    import tomllib
    from importlib.metadata import EntryPoint

    table = tomllib.loads(pyproject.read_text()).get("project", {}).get("entry-points", {}).get("magicvideo.commands", {})
    return [EntryPoint(name, value, "magicvideo.commands") for name, value in table.items()]


def _finish(p: argparse.ArgumentParser) -> None:
    """Every command (and sub-command): defaults in its help, and ``--verbose``."""
    p.formatter_class = HelpFormatter
    if "--verbose" not in p._option_string_actions:
        p.add_argument("--verbose", action="store_true",
                       help="show third-party log lines, warnings and progress bars, and tracebacks on the console")
    for action in p._subparsers._group_actions if p._subparsers else ():
        for child in getattr(action, "choices", {}).values():
            _finish(child)


# ------------------------------------------------------------------------------------------ logging
class _NoTraceback(logging.Formatter):
    """Wraps a console handler's formatter: the record without its traceback (that goes to the log file)."""

    def __init__(self, inner: logging.Formatter | None):
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info = record.exc_text = record.stack_info = None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


class _FileOnly(logging.Filter):
    """Drops records logged with ``extra={"file_only": True}`` (the command's own last error: printed once)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "file_only", False)


class _OwnOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.startswith(OWN_LOGGERS) or record.levelno >= logging.ERROR


_state: dict = {"log_path": None, "verbose": False}


def log_path() -> Path | None:
    """This run's log file (created at its first record), or None outside the ``magicvideo`` command."""
    return _state["log_path"]


def quiet_environment() -> None:
    """Environment settings that quiet third-party output in this process and the ones it starts
    (Ray workers, the temporary Prefect server); each is only a default (``setdefault``)."""
    for key, value in {
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",       # transformers / diffusers weight-loading bars
        "TRANSFORMERS_VERBOSITY": "error",
        "DIFFUSERS_VERBOSITY": "error",
        "MLFLOW_LOGGING_LEVEL": "WARNING",          # "Creating initial MLflow database tables..."
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # offline machines: a failed telemetry call per run
        "PYTHONWARNINGS": os.environ.get("PYTHONWARNINGS") or "ignore",  # in started processes
    }.items():
        os.environ.setdefault(key, value)
    logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)  # the token-auth banner


def _is_console(h: logging.Handler) -> bool:
    return isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in (
        sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)


def configure_logging() -> None:
    """Route this process's logging: everything at INFO to the log file (tracebacks included); the
    console keeps its handlers (Prefect's, if Prefect configured logging) without tracebacks and,
    unless ``--verbose``, without third-party records. Idempotent: call it again after a library
    that reconfigures logging (Prefect at import) was imported. :func:`main` undoes it when the
    command ends (so it can be called in-process, by tests, several times)."""
    path = _state["log_path"]
    if path is None:
        return
    root = logging.getLogger()
    if not any(getattr(h, "_magicvideo", False) for h in root.handlers):
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(path, delay=True, encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d %(threadName)s] "
                                          "%(message)s"))
        fh.setLevel(logging.DEBUG if _state["verbose"] else logging.INFO)
        fh._magicvideo = True
        root.addHandler(fh)
    if not any(_is_console(h) for h in root.handlers):
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        console._magicvideo = True
        root.addHandler(console)
    for h in root.handlers:
        if _is_console(h):
            if not isinstance(h.formatter, _NoTraceback):
                h.setFormatter(_NoTraceback(h.formatter))
            if not any(isinstance(f, _FileOnly) for f in h.filters):
                h.addFilter(_FileOnly())
            if not _state["verbose"] and not any(isinstance(f, _OwnOnly) for f in h.filters):
                h.addFilter(_OwnOnly())
    for name in ("magicvideo", "flows", "evaluation"):
        if logging.getLogger(name).level == logging.NOTSET:
            logging.getLogger(name).setLevel(logging.INFO)
    logging.captureWarnings(True)


def _stop_log() -> None:
    """Undo :func:`configure_logging` (handlers added, formatters wrapped, filters added)."""
    root = logging.getLogger()
    for h in root.handlers[:]:
        if getattr(h, "_magicvideo", False):
            root.removeHandler(h)
            h.close()
        else:
            if isinstance(h.formatter, _NoTraceback):
                h.setFormatter(h.formatter.inner)
            for f in [f for f in h.filters if isinstance(f, (_FileOnly, _OwnOnly))]:
                h.removeFilter(f)
    logging.captureWarnings(False)
    _state["log_path"] = None


def _start_log(command: str, verbose: bool) -> None:
    folder = Path(os.environ.get("MAGICVIDEO_LOG_DIR") or Path.home() / ".cache" / "magicvideo" / "logs")
    _state["log_path"] = folder / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    _state["verbose"] = verbose
    if not verbose:
        quiet_environment()
    configure_logging()


def _sigterm(signum, frame):
    _state["signal"] = signum
    raise KeyboardInterrupt  # the one exception C extensions (Ray's waits) turn into a clean interrupt


def interrupt_signal() -> int:
    """The signal behind the ``KeyboardInterrupt`` being handled: SIGTERM when :func:`interrupt_on_sigterm`'s
    handler raised it, else SIGINT (Ctrl-C)."""
    return _state.get("signal", signal.SIGINT)


def interrupt_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C (KeyboardInterrupt), so every ``finally`` runs: the actors, Ray and
    the temporary server stop, and ``magicvideo eval`` marks its runs KILLED, naming the signal
    (:func:`interrupt_signal`). Prefect's flow engine installs its own SIGTERM handler, whose exception
    Ray's ``ray.wait`` reports as a ``SystemError``: call this again once the flow runs (an
    ``on_running`` hook). Main thread only (elsewhere a no-op)."""
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, (UserError, ValueError, FileNotFoundError)) else f"{type(exc).__name__}: {text}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    _start_log(args.command, getattr(args, "verbose", False))
    log = logging.getLogger("magicvideo.cli")
    prefix = f"magicvideo {args.command}: error:"
    try:
        return _run(args, log, prefix)
    finally:
        _stop_log()


def _run(args, log: logging.Logger, prefix: str) -> int:
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        sig = _state.pop("signal", signal.SIGINT)
        print(f"magicvideo {args.command}: interrupted ({signal.Signals(sig).name})", file=sys.stderr)
        return 128 + sig
    except Exception as exc:  # noqa: BLE001 - the command's last word: one line, the traceback in the log
        from magicvideo.validate import InputError

        user = isinstance(exc, (UserError, InputError)) or type(exc).__name__ in ("ConfigError", "MissingWeightsError")
        log.error("%s %s", prefix, exc, exc_info=True, extra={"file_only": True})
        if user:
            print(f"{prefix} {_one_line(exc)}", file=sys.stderr)
            return 2
        where = f" (traceback in {log_path()})" if log_path() and log_path().exists() else ""
        print(f"{prefix} {_one_line(exc)}{where}", file=sys.stderr)
        if getattr(args, "verbose", False):
            import traceback

            traceback.print_exception(exc)
        return 2 if isinstance(exc, (ValueError, FileNotFoundError)) else 1
    except (SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # a signal turned into an exception (Prefect: SIGTERM -> TerminationSignal)
        sig = getattr(exc, "signal", None)
        sig = sig if isinstance(sig, int) else signal.SIGTERM
        print(f"magicvideo {args.command}: interrupted ({signal.Signals(sig).name})", file=sys.stderr)
        return 128 + sig


def console_main() -> int:
    """The ``magicvideo`` executable: :func:`main`, then a faster exit."""
    rc = main()
    # The command is done and the process ends: exit handlers (Ray, Prefect, logging) still run,
    # but the interpreter's last garbage collections over every object of torch, Prefect and MLflow
    # are skipped (2 s of a `magicvideo eval` exit on 2 cores; BENCHMARKS.md, Orchestration).
    import gc

    gc.freeze()
    return rc


if __name__ == "__main__":
    sys.exit(console_main())
