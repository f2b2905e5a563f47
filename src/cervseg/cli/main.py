"""The `cervseg` command: one thin module per subcommand, errors mapped to exit codes.

`build_app()` registers each subcommand listed in COMMANDS, wrapping it so that a
CervsegError (bad input) becomes one clear log line and its exit code (2); so do an
operating-system refusal (OSError: permissions, full disk) and running out of memory.
`run()` prints usage errors as one line too, with exit code 2.

Help is click's plain formatter, not rich's: importing rich's help renderer costs more than
everything else `cervseg --help` does (docs/benchmarks.md, "Start-up"). Indented paragraphs
(the examples) are marked verbatim so click does not re-wrap them.
"""

from __future__ import annotations

import functools
import gc
import importlib
import logging
import sys
from typing import Any, Callable

import typer

from cervseg.errors import CervsegError
from cervseg.logs import configure

log = logging.getLogger("cervseg")

# One line per subcommand: "module:function" under cervseg.cli, in the order --help lists them.
COMMANDS = (
    "convert_cmd:convert",
    "to_rtstruct_cmd:to_rtstruct",
    "demo_cmd:demo",
    "dataset_cmd:dataset",
    "train_cmd:train",
    "segment_cmd:segment",
    "evaluate_cmd:evaluate",
    "compare_cmd:compare",
    "phantom_cmd:phantom",
    "serve_cmd:serve",
    "jobs_cmd:jobs",
    "review_cmd:review",
    "review_stats_cmd:review_stats",
    "study_cmd:study",
    "study_report_cmd:study_report",
)


def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug detail."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Log warnings and errors only."),
) -> None:
    """Auto-contouring of planning CT for cervical-cancer radiotherapy."""
    configure(verbose=verbose, quiet=quiet)


def exit_on_input_error(func: Callable[..., Any]) -> Callable[..., Any]:
    """A CervsegError from `func` becomes one line on stderr and the error's exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kw: Any) -> Any:
        try:
            return func(*args, **kw)
        except CervsegError as exc:
            log.error("%s", " ".join(str(exc).split("\n")))
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:  # checked before the long work where we can; this is the last resort
            where = f"{exc.filename}: " if exc.filename else ""
            log.error("%s%s", where, exc.strerror or " ".join(str(exc).split()))
            raise typer.Exit(2) from None
        except MemoryError:
            log.error("out of memory: reduce the model's crop_size or batch_size, or use a machine with more memory")
            raise typer.Exit(2) from None

    return wrapper


def verbatim_examples(text: str) -> str:
    """Mark every indented paragraph of a help text with click's no-rewrap marker (\\b)."""
    paragraphs = text.split("\n\n")
    return "\n\n".join("\b\n" + p if p[:1].isspace() else p for p in paragraphs)


def build_app() -> typer.Typer:
    """The typer app with every subcommand of COMMANDS registered."""
    app = typer.Typer(
        name="cervseg",
        help="Auto-contouring of planning CT for cervical-cancer radiotherapy.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    app.callback()(_root)
    for entry in COMMANDS:
        module_name, func_name = entry.split(":")
        func = getattr(importlib.import_module(f"cervseg.cli.{module_name}"), func_name)
        spec = func.cli_spec
        options = {k: verbatim_examples(v) if k in ("help", "epilog") else v for k, v in spec.options.items()}
        app.command(spec.name, **options)(exit_on_input_error(func))
    return app


app = build_app()


def run(argv: list[str] | None = None) -> None:
    """Console-script entry point: a usage error is one line on stderr and exit code 2."""
    try:
        from typer._click.exceptions import ClickException  # typer >= 0.2x vendors click
    except ImportError:  # pragma: no cover - older typer on real click
        from click import ClickException

    try:
        code = app(args=argv, prog_name="cervseg", standalone_mode=False)
    except ClickException as exc:  # UsageError, BadParameter, NoSuchOption, ...
        command = f"{exc.ctx.command_path}: " if getattr(exc, "ctx", None) else ""
        hint = f" (see {exc.ctx.command_path} --help)" if getattr(exc, "ctx", None) else ""
        message = " ".join(exc.format_message().split())
        if message:  # no message: `cervseg` alone, which has printed its help
            sys.stderr.write(f"ERROR: {command}{message}{hint}\n")
        code = exc.exit_code
    except typer.Abort:
        sys.stderr.write("ERROR: aborted\n")
        code = 1
    leave_heap_to_the_os()
    sys.exit(code if isinstance(code, int) else 0)


def leave_heap_to_the_os() -> None:
    """Let the interpreter's shutdown skip collecting a heap the process is about to drop.

    Why: on exit CPython runs full garbage collections over every object still alive while
    it tears the modules down; torch's modules alone hold a large share of them, and a
    contouring run leaves many more in reference cycles (the cost is in docs/benchmarks.md,
    "Start-up"). ``gc.freeze`` moves them out of the collector's reach; memory goes back to
    the OS with the process. What still happens: atexit handlers
    (logging's flush and close among them), the flush of stdout and stderr, and freeing by
    reference count. What no longer does: finalisers of objects caught in reference cycles,
    which Python never promises at exit anyway; every cervseg output is written, closed and
    renamed into place before its command returns (``cervseg.outputs``). Called only here, in
    the console script's exit path: code that calls ``app`` in-process keeps a normal heap.
    """
    gc.freeze()
