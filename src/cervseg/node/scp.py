"""The receiving side: a pynetdicom C-ECHO and C-STORE service for CT and RTSTRUCT.

Why the activity record: a series is complete when its sender has let go of it, i.e. no
open association has touched it and no instance arrived for ``quiet_seconds``; the
scheduler asks ``Activity.is_quiet``. Only calling AE titles of the configuration may
associate (pynetdicom rejects others at association, before any data is sent), and only
uncompressed transfer syntaxes are accepted, since the CT reader decodes no compression.

Nothing here logs patient data: instances are named by UID, log lines carry AE titles,
UIDs and counts.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from pydicom.uid import CTImageStorage, RTStructureSetStorage
from pynetdicom.sop_class import Verification
from pynetdicom import AE, DEFAULT_TRANSFER_SYNTAXES, evt
from pynetdicom.transport import ThreadedAssociationServer

from cervseg.config import NodeConfig
from cervseg.errors import ConfigError
from cervseg.node.jobs import JobStore
from cervseg.node.spool import Spool, is_uid

log = logging.getLogger(__name__)

STORED_SOP_CLASSES = {CTImageStorage: "CT", RTStructureSetStorage: "RTSTRUCT"}
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DATASET_DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000


class Activity:
    """Which series each open association has touched, and when each series was last active."""

    def __init__(self, since: float | None = None) -> None:
        self._lock = threading.Lock()
        self._open: dict[int, set[str]] = {}
        self._last_active: dict[str, float] = {}
        self._since = time.time() if since is None else since  # a restart counts as activity

    def touch(self, association: int, series_uid: str, now: float) -> None:
        with self._lock:
            self._open.setdefault(association, set()).add(series_uid)
            self._last_active[series_uid] = now

    def close(self, association: int, now: float) -> None:
        with self._lock:
            for series_uid in self._open.pop(association, set()):
                self._last_active[series_uid] = now

    def is_busy(self, series_uid: str) -> bool:
        """True while an open association has sent instances of the series."""
        with self._lock:
            return any(series_uid in touched for touched in self._open.values())

    def is_quiet(self, series_uid: str, last_received: float, now: float, quiet_seconds: float) -> bool:
        """No open association holds the series and nothing happened to it for ``quiet_seconds``."""
        with self._lock:
            if any(series_uid in touched for touched in self._open.values()):
                return False
            last = max(last_received, self._last_active.get(series_uid, 0.0), self._since)
        return now - last >= quiet_seconds

    def forget(self, series_uid: str) -> None:
        with self._lock:
            self._last_active.pop(series_uid, None)


class StoreHandler:
    """C-STORE: write the instance into the spool, once; record CT instances for the scheduler."""

    def __init__(self, spool: Spool, store: JobStore, activity: Activity) -> None:
        self.spool, self.store, self.activity = spool, store, activity

    def __call__(self, event: Any) -> int:
        try:
            ds = event.dataset
        except Exception as exc:  # a dataset pydicom cannot decode
            log.warning("C-STORE from %s: undecodable dataset (%s)", _peer(event), type(exc).__name__)
            return CANNOT_UNDERSTAND
        sop_class = str(event.request.AffectedSOPClassUID)
        modality = STORED_SOP_CLASSES.get(sop_class)
        study_uid = str(ds.get("StudyInstanceUID", ""))
        series_uid = str(ds.get("SeriesInstanceUID", ""))
        sop_uid = str(ds.get("SOPInstanceUID", "") or event.request.AffectedSOPInstanceUID)
        if modality is None or not all(is_uid(u) for u in (study_uid, series_uid, sop_uid)):
            log.warning("C-STORE from %s: instance without valid Study/Series/SOP Instance UIDs refused", _peer(event))
            return DATASET_DOES_NOT_MATCH
        try:
            new = self.spool.store(study_uid, series_uid, sop_uid, event.encoded_dataset(include_meta=True))
        except OSError as exc:
            log.error("C-STORE from %s: cannot write to the spool: %s", _peer(event), exc)
            return OUT_OF_RESOURCES
        now = time.time()
        if modality == "CT":
            self.activity.touch(id(event.assoc), series_uid, now)
            if new:
                self.store.record_instance(study_uid, series_uid, now)
        elif new:
            log.info("kept %s %s of series %s (not contoured)", modality, sop_uid, series_uid)
        if not new:
            log.debug("duplicate instance %s of series %s: already stored", sop_uid, series_uid)
        return SUCCESS


def _peer(event: Any) -> str:
    requestor = event.assoc.requestor
    return f"{requestor.ae_title}@{requestor.address}"


def build_ae(cfg: NodeConfig) -> AE:
    """Our application entity: CT + RTSTRUCT storage and verification, callers restricted."""
    ae = AE(ae_title=cfg.ae_title)
    for sop_class in STORED_SOP_CLASSES:
        ae.add_supported_context(sop_class, DEFAULT_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification)
    ae.require_calling_aet = list(cfg.allowed_calling_aets)
    ae.require_called_aet = True
    ae.network_timeout = cfg.network_timeout_seconds
    ae.acse_timeout = cfg.network_timeout_seconds
    ae.dimse_timeout = cfg.network_timeout_seconds
    return ae


def start_scp(cfg: NodeConfig, handler: StoreHandler, activity: Activity) -> ThreadedAssociationServer:
    """Listen on the configured address in background threads (one per association)."""
    ae = build_ae(cfg)

    def closed(event: Any) -> None:
        activity.close(id(event.assoc), time.time())

    def accepted(event: Any) -> None:
        log.info("association from %s accepted", _peer(event))

    def rejected(event: Any) -> None:
        log.warning("association from %s rejected (calling AE title not in allowed_calling_aets?)", _peer(event))

    handlers = [(evt.EVT_C_STORE, handler), (evt.EVT_CONN_CLOSE, closed),
                (evt.EVT_ACCEPTED, accepted), (evt.EVT_REJECTED, rejected)]
    try:
        return ae.start_server((cfg.host, cfg.port), block=False, evt_handlers=handlers)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc}") from None
