"""The sending side: C-STORE of one RTSTRUCT to a destination, retried with back-off.

Why one association per attempt: planning systems close idle associations, and a fresh
association per attempt makes each retry independent of how the previous one broke. A
send counts as delivered only when the peer answers with a success or warning status.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RTStructureSetStorage
from pynetdicom import AE

from cervseg.config import DestinationConfig

log = logging.getLogger(__name__)


class SendError(Exception):
    """One attempt failed; the message says why in a few words."""


class Interrupted(Exception):
    """The node is stopping while a send waits for its next attempt."""


@dataclass(frozen=True)
class SendOutcome:
    delivered: bool
    attempts: int
    error: str | None = None


def send_once(path: Path, destination: DestinationConfig, *, calling_aet: str, timeout: float) -> None:
    """Send ``path`` on one association; SendError unless the peer confirmed storage."""
    _check_reachable(destination, timeout)
    ae = AE(ae_title=calling_aet)
    ae.add_requested_context(RTStructureSetStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    assoc = ae.associate(destination.host, destination.port, ae_title=destination.ae_title)
    if not assoc.is_established:
        if assoc.is_rejected:
            raise SendError("association rejected by the peer (check its AE title and that it accepts ours)")
        raise SendError("association aborted (peer closed the connection or timed out)")
    try:
        status = assoc.send_c_store(Path(path))
    finally:
        if assoc.is_established:
            assoc.release()
    if not status or "Status" not in status:
        raise SendError("no C-STORE response (timeout or connection lost)")
    code = int(status.Status)
    if code != 0x0000 and not 0xB000 <= code <= 0xBFFF:
        raise SendError(f"peer answered C-STORE with status 0x{code:04X}")


def _check_reachable(destination: DestinationConfig, timeout: float) -> None:
    """A TCP connection first: pynetdicom reports a refused connection as an abort, we say which."""
    try:
        socket.create_connection((destination.host, destination.port), timeout=timeout).close()
    except OSError as exc:
        raise SendError(f"no connection ({exc.strerror or type(exc).__name__})") from None


def send_with_retries(
    path: Path, destination: DestinationConfig, *, calling_aet: str, retries: int, backoff_seconds: float,
    timeout: float, stop: threading.Event, max_backoff_seconds: float = 300.0,
) -> SendOutcome:
    """Up to ``1 + retries`` attempts, waiting backoff, 2 x backoff, 4 x backoff, ... (capped) in between."""
    error = None
    for attempt in range(1, retries + 2):
        try:
            send_once(path, destination, calling_aet=calling_aet, timeout=timeout)
            return SendOutcome(True, attempt)
        except SendError as exc:
            error = str(exc)
        if attempt <= retries:
            wait = min(max_backoff_seconds, backoff_seconds * 2 ** min(attempt - 1, 30))
            log.warning("send to %s failed (attempt %d of %d): %s; retrying in %.1f s",
                        destination.describe(), attempt, retries + 1, error, wait)
            if stop.wait(wait):
                raise Interrupted()
    return SendOutcome(False, retries + 1, f"{destination.describe()}: {error} (after {retries + 1} attempts)")
