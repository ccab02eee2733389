"""Command-line front ends. Each module holds tyro dataclass configs and a ``main(argv)``; installed as
``tensorcache-trace``, ``tensorcache-simulate`` and ``tensorcache-stats`` (see ``pyproject.toml``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import tyro

#: For an option whose default is empty (a tuple), so the help says "(default: none)" and not "(default: )".
NONE_BY_DEFAULT = tyro.conf.arg(help_behavior_hint="(default: none)")


def run_cli(body: Callable[[], int]) -> int:
    """Runs a command body: a bad input is one ``error:`` line and exit 2; a closed pipe (``| head``) is quiet."""
    try:
        return body()
    except (ValueError, OSError) as exc:
        if isinstance(exc, BrokenPipeError):
            return _closed_pipe()
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _closed_pipe() -> int:
    """Points stdout at /dev/null so the interpreter's final flush does not raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0
