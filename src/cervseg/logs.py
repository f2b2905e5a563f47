"""Logging set-up for the command line (library code only calls logging.getLogger).

Plain one-line records on stderr: an error must stay one line however narrow the terminal.
"""

from __future__ import annotations

import logging
import sys


def configure(verbose: bool = False, quiet: bool = False) -> None:
    """Route cervseg's log records to stderr, at INFO unless told otherwise."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root = logging.getLogger("cervseg")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
