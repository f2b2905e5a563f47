"""`cervseg review`: the oncologist review web app on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cervseg.cli.app import command

HELP = """Open a local web page on which an oncologist grades every automatic contour, slice by slice.

ROOT holds one folder per patient as `cervseg segment` writes them: the CT series, the
automatic RS_<SeriesInstanceUID>.dcm, optionally a reference RTSTRUCT (shown on demand) and
QA_<SeriesInstanceUID>.csv (lets the page order slices worst-first). Grades go into the
SQLite file --db, with reviewer name and time; changing a grade keeps the old one.

The server listens on 127.0.0.1 only unless --host says otherwise; with --token, open the
page as http://127.0.0.1:PORT/?token=T (every request without the token gets 401).

Keys: Up/Down slices, 1-4 grade (Acceptable, Minor revision, Major revision, Not
acceptable), Tab next structure; drag for window/level, Shift-drag pan, Ctrl-wheel zoom.

Examples:

  cervseg review --cases /contours --db review.sqlite

  cervseg review --cases /contours --db review.sqlite --port 9000 --token "$(openssl rand -hex 16)"
"""


@command("review", help=HELP)
def review(
    cases: Path = typer.Option(..., "--cases", help="Folder with one sub-folder per patient (CT + RS_*.dcm)."),
    db: Path = typer.Option(..., "--db", help="SQLite file for the grades (created when missing)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (default: this machine only)."),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="TCP port."),
    token: Optional[str] = typer.Option(None, "--token", help="Require this token on every request."),
) -> None:
    from cervseg.errors import InputError
    from cervseg.review.server import serve

    if token is not None and len(token) < 8:
        raise InputError("--token: use at least 8 characters")
    serve(cases, db, host=host, port=port, token=token)
