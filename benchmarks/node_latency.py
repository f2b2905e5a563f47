"""DICOM node latency: last CT instance received -> RTSTRUCT delivered, on a 512x512x100 series.

Starts the real `cervseg serve` (built-in model unless --model) and dcmtk's storescp as the
planning system, sends a 100-slice 512x512 phantom CT with dcmtk's storescu, and prints:
- instances per second received (100 instances / storescu's wall time, association included);
- seconds from the last instance received to the RTSTRUCT confirmed by storescp, minus the
  configured quiet time (the node's own work: queue wait, read, model, write, send), and the
  job's timings per stage from the job database.
Figures, never assertions; docs/node.md quotes them with the machine's state.

Usage:
    python benchmarks/node_latency.py                    # 2 threads, built-in model
    python benchmarks/node_latency.py --threads 1 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from segment_speed import SLICES, make_ct  # noqa: E402  (the same 512x512x100 phantom CT)

QUIET_SECONDS = 2.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait(predicate, what: str, timeout: float = 900.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def echo(port: int, called: str) -> bool:
    return subprocess.run(["echoscu", "-aet", "SCANNER", "-aec", called, "127.0.0.1", str(port)],
                          capture_output=True).returncode == 0


def new_series(ct: Path, out: Path) -> Path:
    """A copy of the CT with fresh Series/SOP Instance UIDs (the node stores an instance once)."""
    import pydicom
    from pydicom.uid import generate_uid

    out.mkdir(parents=True)
    series_uid = generate_uid()
    for path in sorted(ct.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(out / path.name)
    return out


def finished_job(spool: Path):
    from cervseg.node.jobs import JobStore

    if not (spool / "jobs.sqlite").is_file():
        return None
    store = JobStore(spool / "jobs.sqlite", read_only=True)
    try:
        jobs = [j for j in store.jobs() if j.state in ("done", "failed")]
    finally:
        store.close()
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="series sent one after the other")
    parser.add_argument("--model", default="builtin")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    with tempfile.TemporaryDirectory(prefix="cervseg-node-bench-") as tmp:
        work = Path(tmp)
        ct = make_ct(work / "phantom")
        node_port, tps_port = free_port(), free_port()
        config = work / "node.yaml"
        config.write_text(yaml.safe_dump({
            "ae_title": "CERVSEG", "port": node_port, "allowed_calling_aets": ["SCANNER"], "spool": "spool",
            "quiet_seconds": QUIET_SECONDS, "threads": args.threads, "model": args.model,
            "destinations": [{"ae_title": "TPS", "host": "127.0.0.1", "port": tps_port}],
        }))
        (work / "tps").mkdir()
        tps = subprocess.Popen(["storescp", "-aet", "TPS", "-od", str(work / "tps"), str(tps_port)])
        node = subprocess.Popen([sys.executable, "-m", "cervseg", "-q", "serve", "--config", str(config)])
        rows = []
        try:
            wait(lambda: echo(tps_port, "TPS"), "storescp")
            wait(lambda: echo(node_port, "CERVSEG"), "the node")
            for i in range(args.repeat):
                series = new_series(ct, work / f"send{i}")
                start = time.perf_counter()
                subprocess.run(["storescu", "-aet", "SCANNER", "-aec", "CERVSEG", "127.0.0.1", str(node_port),
                                "+sd", "+sp", "*.dcm", str(series)], check=True, capture_output=True)
                sent = time.perf_counter() - start
                jobs = wait(lambda: (j := finished_job(work / "spool")) and len(j) > i and j, "the job")
                job = jobs[i]
                delivered = len(list((work / "tps").iterdir())) == i + 1
                rows.append({
                    "state": job.state, "delivered": delivered, "error": job.error,
                    "instances_per_second": round(SLICES / sent, 1),
                    "latency_s_quiet_excluded": round(job.finished - job.last_received - QUIET_SECONDS, 2),
                    "stages_s": job.timings,
                })
                print(f"send {i + 1}: {SLICES} instances in {sent:.2f} s = {SLICES / sent:.0f} instances/s; "
                      f"last instance -> RTSTRUCT delivered {rows[-1]['latency_s_quiet_excluded']:.2f} s "
                      f"(quiet {QUIET_SECONDS:g} s excluded), job {job.state}", flush=True)
        finally:
            node.terminate()
            tps.terminate()
            node.wait(60)
            tps.wait(60)
    print(json.dumps({"threads": args.threads, "model": args.model, "series": f"512x512x{SLICES}",
                      "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
