"""`cervseg serve`: the DICOM node, in the foreground, logging to stderr."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import typer

from cervseg.cli.app import command

log = logging.getLogger(__name__)

HELP = """Run the DICOM node: CT series arrive by C-STORE, RTSTRUCTs go back by C-STORE.

A series becomes a job once no instance of it arrived for quiet_seconds after its sender
released the association; each job runs the same contouring as `cervseg segment` with the
model loaded once at start, writes RS_<SeriesInstanceUID>.dcm and sends it to every
destination (retried with back-off). Jobs survive a restart (see `cervseg jobs`). Stop
with Ctrl-C or SIGTERM. See docs/node.md for connecting a scanner and a planning system.

Example node.yaml:

  ae_title: CERVSEG

  port: 11112

  allowed_calling_aets: [SCANNER, TPS]

  spool: ./spool

  destinations: [{ae_title: TPS, host: 127.0.0.1, port: 11113}]

Examples:

  cervseg serve --config node.yaml

  echoscu -aet SCANNER -aec CERVSEG 127.0.0.1 11112
"""


@command("serve", help=HELP)
def serve(
    config: Path = typer.Option(..., "--config", help="Node YAML config (see docs/node.md)."),
) -> None:
    from cervseg.config import NodeConfig, load_config
    from cervseg.node.server import Node

    cfg = load_config(config, NodeConfig)
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # its INFO lines name every PDU
    node = Node(cfg)
    node.start()
    previous = {sig: signal.signal(sig, lambda *_: node.stop_event.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        node.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        node.stop()
