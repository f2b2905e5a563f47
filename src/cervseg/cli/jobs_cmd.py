"""`cervseg jobs`: the DICOM node's job list, read from its spool (the node may be running)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from cervseg.cli.app import command
from cervseg.cli.text import plain_table

HELP = """List the jobs of the DICOM node configured by --config: id, series UID, state,
times (UTC), attempts and the reason of a failure. Reads the job database in the spool
without changing it, so it is safe while `cervseg serve` runs.

Examples:

  cervseg jobs --config node.yaml

  cervseg jobs --config node.yaml --state failed
"""

STATES = ("queued", "running", "done", "failed")


def _when(seconds: float | None) -> str:
    return "-" if seconds is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def jobs_table(jobs) -> str:
    """One line per job under a header; the error column last, in full."""
    header = ("id", "series", "state", "instances", "received", "started", "finished", "attempts", "error")
    rows = [header] + [
        (str(j.id), j.series_uid, j.state, str(j.instances), _when(j.last_received), _when(j.started),
         _when(j.finished), str(j.attempts), j.error or "")
        for j in jobs
    ]
    return plain_table(rows)


@command("jobs", help=HELP)
def jobs(
    config: Path = typer.Option(..., "--config", help="The node's YAML config (its spool holds the jobs)."),
    state: Optional[str] = typer.Option(None, "--state", help="Only jobs in this state: queued, running, done, failed."),
) -> None:
    from cervseg.config import NodeConfig, load_config
    from cervseg.errors import InputError
    from cervseg.node.jobs import JobStore
    from cervseg.node.spool import Spool

    if state is not None and state not in STATES:
        raise InputError(f"--state must be one of {', '.join(STATES)}, got {state!r}")
    cfg = load_config(config, NodeConfig)
    store = JobStore(Path(cfg.spool) / Spool.DATABASE, read_only=True)
    try:
        typer.echo(jobs_table(store.jobs(state)))
    finally:
        store.close()
