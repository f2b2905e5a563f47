"""What a subcommand module needs from the CLI: the `command` marker.

A subcommand module marks its one command function with `@command(name, help=...)`; the
marker only records the name and typer's options on the function. `cli/main.py` builds the
typer app from its list of command modules, so nothing here imports a subcommand and no
module imports `main`: the CLI has no import cycle and no app that fills up as a side effect.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class CommandSpec:
    """A subcommand's name and the keyword arguments for typer's `app.command`."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


def command(name: str, **options: Any) -> Callable[[F], F]:
    """Mark `func` as the subcommand `name` (typer options such as help= and epilog= pass through)."""

    def mark(func: F) -> F:
        func.cli_spec = CommandSpec(name, options)  # type: ignore[attr-defined]
        return func

    return mark


@contextmanager
def pipeline_imports() -> Iterator[None]:
    """Import a command's pipeline (torch, scipy, pydicom, ...) with the cyclic collector paused.

    Why: those imports allocate a few hundred thousand modules, functions and classes that
    live until exit, and the collector would walk all of them several times while they load,
    finding nothing to free (the cost is in docs/benchmarks.md, "Start-up"). The collector's
    previous state comes back afterwards, also when an import fails.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
