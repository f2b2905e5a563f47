"""One job of the node: contour the received series, keep the RTSTRUCT, send it on.

Why the same code as ``cervseg segment``: the node calls ``segment_series`` on the spool
folder of the series with the model loaded once at start, so a CT the command line
refuses (gaps, tilt, oblique ...) is refused here with the same one-line reason, and
nothing is sent. Each finished stage is recorded in the job store before the next starts,
so a node killed mid-job resumes where it stopped (see ``cervseg.node.jobs``).

Each job ends with one structured log line (``key=value``): its state, counts and
timings in seconds, and UIDs; never the patient's name or ID.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

from cervseg.config import NodeConfig
from cervseg.errors import CervsegError
from cervseg.infer.predictor import Predictor
from cervseg.infer.segment import segment_series
from cervseg.node.jobs import Job, JobStore
from cervseg.node.sender import Interrupted, send_with_retries
from cervseg.node.spool import Spool
from cervseg.outputs import atomic_file

log = logging.getLogger(__name__)


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


class JobWorker:
    """Runs claimed jobs to their end (done or failed), or leaves them for a restart when stopped."""

    def __init__(self, cfg: NodeConfig, store: JobStore, spool: Spool, predictor: Predictor,
                 stop: threading.Event) -> None:
        self.cfg, self.store, self.spool, self.predictor, self.stop = cfg, store, spool, predictor, stop

    def run(self, job: Job) -> None:
        timings = dict(job.timings)
        timings["queued"] = round((job.started or time.time()) - job.created, 3)
        start = time.perf_counter()
        try:
            rtstruct = self._contour(job, timings)
            if self.cfg.output_folder is not None:
                self._copy_to_output(rtstruct)
            t = time.perf_counter()
            errors = self._deliver(job, rtstruct)
            timings["send"] = round(time.perf_counter() - t, 3)
        except Interrupted:
            self.store.requeue(job.id)
            log.info("job %d interrupted by shutdown; queued again for the next start", job.id)
            return
        except CervsegError as exc:
            self._finish(job, "failed", one_line(exc), timings, start)
            return
        except Exception as exc:  # a bug must fail the job, not the node
            log.exception("job %d: internal error", job.id)
            self._finish(job, "failed", f"internal error: {type(exc).__name__}: {one_line(exc)}", timings, start)
            return
        self._finish(job, "failed" if errors else "done", "; ".join(errors) or None, timings, start)

    def _contour(self, job: Job, timings: dict[str, float]) -> Path:
        """The job's RTSTRUCT: made now, or the one an interrupted attempt already recorded."""
        if job.rtstruct and Path(job.rtstruct).is_file():
            log.info("job %d: reusing the RTSTRUCT of an earlier attempt", job.id)
            return Path(job.rtstruct)
        folder = self.spool.series_folder(job.study_uid, job.series_uid)
        out = self.spool.result_folder(job.id)
        if out.exists():
            shutil.rmtree(out)  # a half-finished earlier attempt
        result = segment_series(folder, out, series_uid=job.series_uid, predictor=self.predictor)
        for key in ("read", "predict", "write"):
            timings[key] = round(result.timings.get(key, 0.0), 3)
        self.store.set_rtstruct(job.id, result.rtstruct, timings)
        return result.rtstruct

    def _copy_to_output(self, rtstruct: Path) -> None:
        target = Path(self.cfg.output_folder) / rtstruct.name  # type: ignore[arg-type]
        with atomic_file(target) as tmp:
            shutil.copyfile(rtstruct, tmp)

    def _deliver(self, job: Job, rtstruct: Path) -> list[str]:
        """Send to every destination not yet confirmed; the reasons of those that failed."""
        errors = []
        for destination in self.cfg.destinations:
            name = destination.describe()
            if name in job.delivered:
                continue
            outcome = send_with_retries(
                rtstruct, destination, calling_aet=self.cfg.ae_title, retries=self.cfg.retries,
                backoff_seconds=self.cfg.retry_backoff_seconds,
                max_backoff_seconds=self.cfg.retry_backoff_max_seconds, timeout=self.cfg.network_timeout_seconds,
                stop=self.stop,
            )
            if outcome.delivered:
                self.store.mark_delivered(job.id, name)
            else:
                errors.append(outcome.error or name)
        return errors

    def _finish(self, job: Job, state: str, error: str | None, timings: dict[str, float], start: float) -> None:
        now = time.time()
        timings["run"] = round(time.perf_counter() - start, 3)
        timings["since_last_instance"] = round(now - job.last_received, 3)
        if not self.store.finish(job.id, state, now, error=error, timings=timings):
            log.error("job %d was no longer running; result not recorded twice", job.id)
            return
        fields = {"job": job.id, "state": state, "series": job.series_uid, "instances": job.instances,
                  "attempt": job.attempts, **{f"{k}_s": v for k, v in timings.items()}}
        line = " ".join(f"{k}={v}" for k, v in fields.items())
        if error:
            line += ' error="{}"'.format(error.replace('"', "'"))
        (log.info if state == "done" else log.warning)("%s", line)
