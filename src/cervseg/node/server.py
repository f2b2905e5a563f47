"""``cervseg serve``: the SCP, a scheduler and the job workers, around one loaded model.

Threads: pynetdicom runs one thread per association; a scheduler thread turns quiet
series into jobs and removes old spool data; ``workers`` threads run jobs one at a time
each. The model is loaded before the node listens (a bad model is a start-up error, not a
failed job) and shared by the workers, so associations are accepted while jobs run.
"""

from __future__ import annotations

import logging
import threading
import time

from cervseg.config import NodeConfig
from cervseg.infer.predictor import Predictor
from cervseg.infer.segment import load_predictor
from cervseg.node.jobs import JobStore
from cervseg.node.scp import Activity, StoreHandler, start_scp
from cervseg.node.spool import Spool
from cervseg.node.worker import JobWorker
from cervseg.outputs import ensure_not_inside

log = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 60.0


class Node:
    """The running node; ``start()`` returns once it listens, ``stop()`` shuts it down."""

    def __init__(self, cfg: NodeConfig, predictor: Predictor | None = None) -> None:
        self.cfg = cfg
        self.predictor = predictor
        self.stop_event = threading.Event()
        self._work = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server = None
        self.spool: Spool | None = None
        self.store: JobStore | None = None

    def start(self) -> None:
        cfg = self.cfg
        if cfg.output_folder is not None:
            ensure_not_inside(cfg.output_folder, cfg.spool, what="spool")
        self.spool = Spool(cfg.spool)
        self.store = JobStore(self.spool.database)
        requeued = self.store.recover()
        if requeued:
            log.info("%d job(s) interrupted by the last stop queued again", requeued)
        if self.predictor is None:
            self.predictor = load_predictor(cfg.model_path, batch_size=cfg.batch_size, threads=cfg.threads)
        self.activity = Activity()
        handler = StoreHandler(self.spool, self.store, self.activity)
        self._server = start_scp(cfg, handler, self.activity)
        self._spawn(self._schedule, "cervseg-scheduler")
        for i in range(cfg.workers):
            worker = JobWorker(cfg, self.store, self.spool, self.predictor, self.stop_event)
            self._spawn(lambda w=worker: self._work_loop(w), f"cervseg-worker-{i + 1}")
        destinations = ", ".join(d.describe() for d in cfg.destinations) or "none"
        if not cfg.destinations and cfg.output_folder is None:
            log.warning("no destinations and no output_folder: RTSTRUCTs stay in %s only until clean-up",
                        self.spool.results_root)
        log.info("listening on %s:%d as %s; model %s; %d worker(s); destinations: %s",
                 cfg.host, cfg.port, cfg.ae_title, self.predictor.metadata.model_name, cfg.workers, destinations)

    def _spawn(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def wait(self) -> None:
        """Block until ``stop()`` (from a signal handler or another thread)."""
        while not self.stop_event.wait(0.5):
            pass

    def stop(self, timeout: float = 10.0) -> None:
        """Stop listening and let the workers put back what they were doing."""
        self.stop_event.set()
        self._work.set()
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        if self.store is not None:
            self.store.close()
            self.store = None
        log.info("node stopped")

    # ------------------------------------------------------------------ threads

    def _schedule(self) -> None:
        """Turn quiet series into jobs; now and then remove spool data of old finished jobs."""
        tick = min(0.25, self.cfg.quiet_seconds / 4)
        next_purge = 0.0
        while not self.stop_event.wait(tick):
            try:
                now = time.time()
                for series in self.store.pending_series():
                    if self.activity.is_quiet(series.series_uid, series.last_received, now, self.cfg.quiet_seconds):
                        job_id = self.store.create_job(series.series_uid, now)
                        if job_id is not None:
                            log.info("series %s complete (%d instances): job %d queued",
                                     series.series_uid, series.instances, job_id)
                            self._work.set()
                if now >= next_purge:
                    self._purge(now)
                    next_purge = now + min(PURGE_EVERY_SECONDS, max(1.0, self.cfg.keep_finished_hours * 3600 / 10))
            except Exception:  # the scheduler must outlive any one bad row
                log.exception("scheduler error")

    def _purge(self, now: float) -> None:
        for job in self.store.purgeable(now - self.cfg.keep_finished_hours * 3600):
            if self.activity.is_busy(job.series_uid):
                continue
            self.spool.remove_result(job.id)
            remove_series = not self.store.series_still_needed(job.series_uid)
            if remove_series:
                self.spool.remove_series(job.study_uid, job.series_uid)
                self.activity.forget(job.series_uid)
            self.store.mark_purged(job.id, remove_series)
            log.debug("job %d: spool data removed", job.id)

    def _work_loop(self, worker: JobWorker) -> None:
        while not self.stop_event.is_set():
            try:
                job = self.store.claim_next(time.time(), self.cfg.max_job_attempts)
            except Exception:
                log.exception("cannot read the job queue")
                job = None
            if job is None:
                self._work.wait(1.0)
                self._work.clear()
                continue
            log.info("job %d started (series %s, attempt %d)", job.id, job.series_uid, job.attempts)
            worker.run(job)
