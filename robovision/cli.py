"""The ``robovision`` command: argument parsing, logging set-up and exit codes.

Each subcommand lives in ``robovision/commands/<name>.py`` and exposes
``add_parser(subparsers)``, which registers the subcommand and sets ``func``:
a callable taking the parsed arguments and returning an exit code.
Heavy imports (the interpreter, OpenCV, TensorFlow) happen inside ``func``,
so ``robovision --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from robovision import __version__
from robovision.errors import EXIT_INTERNAL, EXIT_USAGE, RobovisionError

log = logging.getLogger(__name__)

EXIT_BROKEN_PIPE = 141

COMMANDS = (
    "capture",
    "info",
    "run",
    "subscribe",
    "doctor",
    "train",
    "eval",
    "bench",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="robovision",
        description="Camera to int8 TFLite detector to a local detection socket.",
    )
    parser.add_argument("--version", action="version", version=f"robovision {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"robovision.commands.{name}")
        module.add_parser(subparsers)
    for subparser in subparsers.choices.values():
        # -v works after the subcommand too: `robovision capture -v ...`
        subparser.add_argument(
            "-v", "--verbose", dest="sub_verbose", action="count", default=0, help="more logging"
        )
    return parser


def configure_logging(verbosity: int) -> None:
    """Log to stderr; stdout is kept for JSON output."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    configure_logging(args.verbose + args.sub_verbose + getattr(args, "default_verbosity", 0))
    try:
        return int(args.func(args))
    except BrokenPipeError:
        # The reader of stdout went away (`robovision capture ... | head -1`): stop quietly,
        # with the status a program killed by SIGPIPE would have.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except RobovisionError as exc:
        print(f"robovision {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception:
        log.exception("unexpected failure; please report it with the command line used")
        return EXIT_INTERNAL
