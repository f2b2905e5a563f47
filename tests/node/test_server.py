"""The node end to end against real dcmtk peers: storescu sends CT, storescp receives the RTSTRUCT.

The node runs in this process (model loaded once for the session); the peers are dcmtk
subprocesses on free ports. A test waits by polling with a generous deadline.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest

from cervseg.infer.segment import segment_series
from cervseg.node.jobs import Job
from tests.node.conftest import node_config
from tests.node.support import (
    NODE_AET, SCANNER_AET, StoreSCP, dciodvfy_errors, echo, free_port, referenced_instances, sop_uids,
    storescu, wait_for,
)

pytestmark = pytest.mark.external


def _destination(scp: StoreSCP) -> dict:
    return {"ae_title": scp.ae_title, "host": "127.0.0.1", "port": scp.port}


def _finished(node, n: int = 1) -> list[Job] | None:
    jobs = [j for j in node.store.jobs() if j.state in ("done", "failed")]
    return jobs if len(jobs) >= n else None


def _contours(rtstruct: Path) -> dict[str, list[list[str]]]:
    ds = pydicom.dcmread(rtstruct)
    names = {int(r.ROINumber): str(r.ROIName) for r in ds.StructureSetROISequence}
    return {names[int(c.ReferencedROINumber)]: [list(map(str, item.ContourData)) for item in c.ContourSequence]
            for c in ds.ROIContourSequence}


def test_series_comes_back_as_a_valid_rtstruct_referencing_exactly_the_sent_instances(
    phantom_series: list[Path], start_node, predictor, tmp_path: Path
) -> None:
    patient = phantom_series[0].parent  # CT/ and the phantom's RTSTRUCT: the RTSTRUCT is kept, not contoured
    with StoreSCP(tmp_path / "tps") as tps:
        cfg = node_config(tmp_path / "spool", destinations=[_destination(tps)], output_folder=tmp_path / "out")
        node = start_node(cfg)
        sent = storescu(patient, cfg.port)
        assert sent.returncode == 0, sent.stderr
        received = wait_for(tps.received, "the RTSTRUCT at storescp")
        (job,) = wait_for(lambda: _finished(node), "the job to finish")

        assert job.state == "done" and job.error is None and job.attempts == 1
        ct_uids = sop_uids(phantom_series[0])
        assert job.instances == len(ct_uids)
        assert len(received) == 1
        series_uid, listed, cited = referenced_instances(received[0])
        assert series_uid == str(pydicom.dcmread(next(phantom_series[0].glob("*.dcm"))).SeriesInstanceUID)
        assert series_uid == job.series_uid
        assert listed == ct_uids and cited and cited <= ct_uids
        assert dciodvfy_errors(received[0]) == []
        written = list((tmp_path / "out").iterdir())
        assert [p.name for p in written] == [f"RS_{series_uid}.dcm"]
        assert pydicom.dcmread(written[0]).SOPInstanceUID == pydicom.dcmread(received[0]).SOPInstanceUID
        # the same contours as `cervseg segment` makes of the folder that was sent
        direct = segment_series(phantom_series[0], tmp_path / "direct", predictor=predictor).rtstruct
        assert _contours(received[0]) == _contours(direct) != {}

        # the phantom's own RTSTRUCT was stored but made no job; a re-send stores nothing twice
        kept = [p for p in (tmp_path / "spool" / "series").rglob("*.dcm") if p.parent.name != series_uid]
        assert [pydicom.dcmread(p).Modality for p in kept] == ["RTSTRUCT"]
        again = storescu(patient, cfg.port)
        assert again.returncode == 0, again.stderr
        spooled = list((tmp_path / "spool" / "series").rglob(f"{series_uid}/*.dcm"))
        assert sorted(p.stem for p in spooled) == sorted(ct_uids)
        assert node.store.pending_series() == [] and len(node.store.jobs()) == 1


def test_unknown_calling_ae_and_wrong_called_ae_are_rejected(phantom_series: list[Path], start_node,
                                                               tmp_path: Path) -> None:
    cfg = node_config(tmp_path / "spool")
    start_node(cfg)
    assert echo(cfg.port, NODE_AET, calling=SCANNER_AET)
    assert not echo(cfg.port, NODE_AET, calling="INTRUDER")
    assert not echo(cfg.port, "SOMEONE_ELSE", calling=SCANNER_AET)
    refused = storescu(phantom_series[0], cfg.port, calling="INTRUDER")
    assert refused.returncode != 0
    assert "Calling AE Title Not Recognized" in refused.stderr
    assert list((tmp_path / "spool" / "series").rglob("*.dcm")) == []


def test_two_series_sent_at_the_same_time_both_come_back_and_the_spool_is_emptied(
    phantom_series: list[Path], start_node, tmp_path: Path
) -> None:
    with StoreSCP(tmp_path / "tps") as tps:
        cfg = node_config(tmp_path / "spool", destinations=[_destination(tps)], keep_finished_hours=0)
        node = start_node(cfg)
        senders = [storescu(folder, cfg.port, wait=False) for folder in phantom_series]
        for sender in senders:
            _, err = sender.communicate(timeout=300)
            assert sender.returncode == 0, err
        wait_for(lambda: len(tps.received()) >= 2, "two RTSTRUCTs at storescp")
        jobs = wait_for(lambda: _finished(node, 2), "both jobs to finish")

        assert [j.state for j in jobs] == ["done", "done"]
        back = {referenced_instances(p)[0]: referenced_instances(p)[1] for p in tps.received()}
        sent = {str(pydicom.dcmread(next(f.glob("*.dcm"))).SeriesInstanceUID): sop_uids(f) for f in phantom_series}
        assert back == sent
        # keep_finished_hours 0: received instances and results go once the jobs are finished
        wait_for(lambda: all(j.purged for j in node.store.jobs()), "spool clean-up")
        assert list((tmp_path / "spool").rglob("*.dcm")) == []


def test_series_with_a_missing_slice_fails_with_its_reason_and_sends_nothing(
    phantom_series: list[Path], start_node, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(phantom_series[1], broken)
    by_z = sorted(broken.glob("*.dcm"), key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]))
    by_z[len(by_z) // 2].unlink()
    with StoreSCP(tmp_path / "tps") as tps:
        cfg = node_config(tmp_path / "spool", destinations=[_destination(tps)], output_folder=tmp_path / "out")
        node = start_node(cfg)
        assert storescu(broken, cfg.port).returncode == 0
        (job,) = wait_for(lambda: _finished(node), "the job to finish")

        assert job.state == "failed"
        assert "missing slices" in job.error and "\n" not in job.error
        assert job.rtstruct is None
        assert tps.received() == []
        assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_a_destination_that_is_down_is_retried_then_reported(phantom_series: list[Path], start_node,
                                                             tmp_path: Path) -> None:
    down = free_port()  # nothing listens here
    cfg = node_config(tmp_path / "spool", destinations=[{"ae_title": "TPS", "host": "127.0.0.1", "port": down}],
                      output_folder=tmp_path / "out", retries=2, retry_backoff_seconds=0.2)
    node = start_node(cfg)
    assert storescu(phantom_series[0], cfg.port).returncode == 0
    (job,) = wait_for(lambda: _finished(node), "the job to finish")

    assert job.state == "failed"
    assert job.error == f"TPS@127.0.0.1:{down}: no connection (Connection refused) (after 3 attempts)"
    assert job.delivered == ()
    assert job.rtstruct and Path(job.rtstruct).is_file()  # contoured; kept in the spool for a later look
    assert len(list((tmp_path / "out").iterdir())) == 1
