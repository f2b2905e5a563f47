"""Fixtures for the node tests: phantom CT series to send, the built-in model, a node in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from cervseg.config import NodeConfig
from tests.node.support import NODE_AET, SCANNER_AET, echo, free_port, wait_for


@pytest.fixture(scope="session")
def phantom_series(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two tiny phantom patients' CT folders (different series, 32-ish slices of 96 x 96)."""
    from cervseg.phantom.cohort import write_cohort

    root = tmp_path_factory.mktemp("phantoms")
    return [folder / "CT" for folder in write_cohort(root, 2, seed=3, preset="tiny")]


@pytest.fixture(scope="session")
def predictor():
    """The built-in model, loaded once for every in-process node (one thread: the machine is shared)."""
    from cervseg.infer.segment import load_predictor

    return load_predictor(None, threads=1)


def node_config(spool: Path, port: int | None = None, **changes: object) -> NodeConfig:
    """A node on localhost with short quiet time and back-off, accepting SCANNER only."""
    values: dict[str, object] = dict(
        ae_title=NODE_AET, host="127.0.0.1", port=port or free_port(), allowed_calling_aets=[SCANNER_AET],
        spool=spool, quiet_seconds=0.5, threads=1, retries=2, retry_backoff_seconds=0.2,
        network_timeout_seconds=10, keep_finished_hours=24,
    )
    values.update(changes)
    return NodeConfig.model_validate(values)


@pytest.fixture
def start_node(predictor) -> Iterator[Callable[..., object]]:
    """start_node(cfg) -> a running in-process Node (stopped after the test)."""
    from cervseg.node.server import Node

    nodes = []

    def start(cfg: NodeConfig):
        node = Node(cfg, predictor=predictor)
        node.start()
        nodes.append(node)
        wait_for(lambda: echo(cfg.port, NODE_AET), f"the node on port {cfg.port}")
        return node

    yield start
    for node in nodes:
        node.stop()
