"""C-STORE of an RTSTRUCT to a real storescp; a peer that is down is retried, then reported."""

from __future__ import annotations

import threading
from pathlib import Path

import pydicom
import pytest

from cervseg.config import DestinationConfig
from cervseg.node.sender import Interrupted, send_with_retries
from tests.node.support import StoreSCP, free_port

pytestmark = pytest.mark.external


def _rtstruct(phantom_series: list[Path]) -> Path:
    return next(phantom_series[0].parent.glob("RS_*.dcm"))


def test_delivered_on_the_first_attempt_as_sent(phantom_series: list[Path], tmp_path: Path) -> None:
    rtstruct = _rtstruct(phantom_series)
    with StoreSCP(tmp_path / "tps") as tps:
        destination = DestinationConfig(ae_title=tps.ae_title, host="127.0.0.1", port=tps.port)
        outcome = send_with_retries(rtstruct, destination, calling_aet="CERVSEG", retries=2, backoff_seconds=0.1,
                                    timeout=10, stop=threading.Event())
        (received,) = tps.received()
    assert (outcome.delivered, outcome.attempts, outcome.error) == (True, 1, None)
    assert pydicom.dcmread(received) == pydicom.dcmread(rtstruct)


def test_a_peer_that_is_down_is_tried_retries_plus_one_times(phantom_series: list[Path]) -> None:
    port = free_port()
    destination = DestinationConfig(ae_title="TPS", host="127.0.0.1", port=port)
    outcome = send_with_retries(_rtstruct(phantom_series), destination, calling_aet="CERVSEG", retries=3,
                                backoff_seconds=0.05, timeout=5, stop=threading.Event())
    assert (outcome.delivered, outcome.attempts) == (False, 4)
    assert outcome.error == f"TPS@127.0.0.1:{port}: no connection (Connection refused) (after 4 attempts)"


def test_a_stopping_node_does_not_wait_for_the_next_attempt(phantom_series: list[Path]) -> None:
    stop = threading.Event()
    stop.set()
    destination = DestinationConfig(ae_title="TPS", host="127.0.0.1", port=free_port())
    with pytest.raises(Interrupted):
        send_with_retries(_rtstruct(phantom_series), destination, calling_aet="CERVSEG", retries=3,
                          backoff_seconds=3600, timeout=5, stop=stop)
