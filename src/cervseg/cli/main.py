"""The `cervseg` command: one thin module per subcommand, errors mapped to exit codes.

Every subcommand is wrapped by `command()`, which turns a CervsegError (bad input) into one
clear log line and exit code 2; usage errors get typer's own exit code 2.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable

import typer

from cervseg.errors import CervsegError
from cervseg.logs import configure

log = logging.getLogger("cervseg")

app = typer.Typer(
    name="cervseg",
    help="Auto-contouring of planning CT for cervical-cancer radiotherapy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug detail."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Log warnings and errors only."),
) -> None:
    """Auto-contouring of planning CT for cervical-cancer radiotherapy."""
    configure(verbose=verbose, quiet=quiet)


def command(name: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a subcommand whose CervsegError becomes one line on stderr and exit code 2."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kw: Any) -> Any:
            try:
                return func(*args, **kw)
            except CervsegError as exc:
                log.error("%s", " ".join(str(exc).split("\n")))
                raise typer.Exit(exc.exit_code) from None

        app.command(name, **kwargs)(wrapper)
        return func

    return decorate


def run() -> None:
    """Console-script entry point."""
    from cervseg.cli import commands  # noqa: F401  (each module registers its command)

    app()
