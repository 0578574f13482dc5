"""The `magicvideo` command line.

Subcommands are registered by each package through the `magicvideo.commands` entry-point group
(see pyproject.toml): an entry point names a function `add(subparsers)` that adds one parser and
sets `func` on it. This keeps `magicvideo` free of imports from `evaluation` and `flows` (DESIGN.md:
dependencies point one way) while all commands share one executable.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points


class UserError(Exception):
    """An error the user caused (bad path, bad config): printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="magicvideo",
        description="MagicVideo: text-to-video latent diffusion, and the pipeline that benchmarks it.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for ep in sorted(entry_points(group="magicvideo.commands"), key=lambda e: e.name):
        ep.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except (UserError, FileNotFoundError, ValueError) as exc:
        print(f"magicvideo {args.command}: error: {exc}", file=sys.stderr)
        return 2


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
