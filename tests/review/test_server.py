"""The review API in-process: slices and contours match the files, grades, token, paths, logs."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from fastapi.testclient import TestClient
from matplotlib.path import Path as MplPath

from cervseg.errors import InputError
from cervseg.review.cases import safe_case_id
from cervseg.review.server import HideCaseFolders, create_app

TOKEN = "s3cret-token-for-tests"


@pytest.fixture()
def client(review_root, tmp_path):
    root, _ = review_root
    return TestClient(create_app(root, tmp_path / "review.sqlite", token=TOKEN))


def auth() -> dict:
    return {"Authorization": f"Bearer {TOKEN}"}


def polygon_mask(polygons, shape) -> np.ndarray:
    """Rasterise display polygons (pixel centres at +0.5) by the even-odd rule."""
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    centres = np.stack([cc.ravel() + 0.5, rr.ravel() + 0.5], axis=1)
    mask = np.zeros(shape, dtype=bool)
    for xy in polygons:
        mask ^= MplPath(np.asarray(xy).reshape(-1, 2)).contains_points(centres).reshape(shape)
    return mask


def test_every_request_without_the_token_gets_401(client):
    for path in ("/", "/static/app.js", "/api/cases", "/api/cases/CASE01", "/api/cases/CASE01/slices/3/image",
                 "/api/cases/CASE01/grades?reviewer=x"):
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={"Authorization": "Bearer wrong-token"}).status_code == 401, path
    post = client.post("/api/grades", json={"case_id": "CASE01", "slice_index": 1, "structure": "Bladder",
                                            "reviewer": "x", "grade": 1})
    assert post.status_code == 401
    assert client.get("/api/cases", headers=auth()).status_code == 200


def test_opening_the_page_with_the_token_sets_a_cookie_for_its_scripts(client):
    page = client.get(f"/?token={TOKEN}")
    assert page.status_code == 200 and "<canvas" in page.text
    assert client.get("/static/app.js").status_code == 200  # the cookie now carries the token
    assert "cdn" not in page.text.lower() and "http" not in page.text.replace("http-equiv", "")


def test_case_paths_cannot_leave_the_root(client):
    for bad in ("..", "%2E%2E", ".hidden", "CASE01%2F..%2F..", "..%2F..%2Fetc%2Fpasswd"):
        r = client.get(f"/api/cases/{bad}/slices/0/image", headers=auth())
        assert r.status_code in (400, 404), bad
        assert len(r.content) < 200
    assert client.get("/api/cases/not-a-case", headers=auth()).status_code == 404
    for bad in ("..", "../x", "a/b", "a\\b", ".git", "", "C:"):
        with pytest.raises(InputError):
            safe_case_id(bad)
    assert safe_case_id("CASE01") == "CASE01"


def test_case_list_slices_and_contours_match_the_files(client, review_root):
    _, info = review_root
    cases = client.get("/api/cases", headers=auth()).json()
    assert [c["id"] for c in cases] == ["CASE01", "CASE02"]  # the folder without DICOM is skipped
    auto = info["CASE01"]["auto"]
    expected_items = sum(int(auto[n][z].any()) for n in auto for z in range(auto.geometry.shape[0]))
    assert cases[0]["gradeable"] == expected_items and cases[0]["has_reference"] and cases[0]["has_qa"]
    meta = client.get("/api/cases/CASE01", headers=auth()).json()
    volume = info["CASE01"]["volume"]
    assert (meta["n_slices"], meta["rows"], meta["cols"]) == volume.geometry.shape
    assert meta["contour_slices"] == sorted({z for n in auto for z in np.flatnonzero(auto[n].any(axis=(1, 2)))})
    assert sorted(meta["worst_first"]) == meta["contour_slices"]
    z = int(np.flatnonzero(auto["Bladder"].any(axis=(1, 2)))[3])
    raw = client.get(f"/api/cases/CASE01/slices/{z}/image", headers=auth()).content
    hu = np.frombuffer(raw, dtype="<i2").reshape(volume.geometry.shape[1:])
    np.testing.assert_array_equal(hu, volume.array[z])  # HFS: the display layout is the stored one
    contours = client.get(f"/api/cases/CASE01/slices/{z}/contours", headers=auth()).json()
    for kind, labels in (("auto", auto), ("reference", info["CASE01"]["truth"])):
        drawn = polygon_mask(contours[kind]["Bladder"], hu.shape)
        truth = labels["Bladder"][z]
        assert 2 * (drawn & truth).sum() / (drawn.sum() + truth.sum()) > 0.9, kind
    assert set(contours["qa"]) == set(contours["auto"])


def test_grades_are_stored_read_back_and_checked(client):
    z = client.get("/api/cases/CASE01", headers=auth()).json()["contour_slices"][0]
    structure = next(iter(client.get(f"/api/cases/CASE01/slices/{z}/contours", headers=auth()).json()["auto"]))
    body = {"case_id": "CASE01", "slice_index": z, "structure": structure, "reviewer": "Dr A", "grade": 3,
            "seconds_on_slice": 2.5}
    assert client.post("/api/grades", json=body, headers=auth()).status_code == 200
    assert client.post("/api/grades", json=body | {"grade": 1}, headers=auth()).status_code == 200
    assert client.post("/api/comments", json={"case_id": "CASE01", "slice_index": z, "reviewer": "Dr A",
                                              "text": "ok"}, headers=auth()).status_code == 200
    saved = client.get("/api/cases/CASE01/grades", params={"reviewer": "Dr A"}, headers=auth()).json()
    assert saved == {"grades": {str(z): {structure: 1}}, "comments": {str(z): "ok"}}
    assert client.get("/api/cases", params={"reviewer": "Dr A"}, headers=auth()).json()[0]["graded"] == 1
    refused = [body | {"grade": 5}, body | {"structure": "SpinalCord"}, body | {"slice_index": 999},
               body | {"reviewer": " "}, body | {"case_id": ".."}]
    assert [client.post("/api/grades", json=b, headers=auth()).status_code for b in refused] == [422, 400, 404, 400, 400]
    store = client.app.state.store
    assert [g.grade for g in store.history("CASE01", z, structure)] == [3, 1]


def test_reference_slice_metrics_are_stored_when_a_case_loads(client):
    client.get("/api/cases/CASE01", headers=auth())
    rows = [m for m in client.app.state.store.slice_metrics() if m.case_id == "CASE01"]
    rectum = [m for m in rows if m.structure == "Rectum"]
    bladder = [m for m in rows if m.structure == "Bladder" and m.status == "paired"]
    assert rectum and all(m.dice == pytest.approx(1.0) and m.hd95_mm == 0.0 for m in rectum)
    assert bladder and all(m.dice < 1.0 and m.hd95_mm > 0 for m in bladder)  # shifted by two pixels


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_logs_name_no_patient_even_when_folders_are_patient_ids(tmp_path):
    """Case folders named by PatientID (as some exports do): neither ID, name nor folder reaches the log."""
    from tests.review.conftest import write_case

    root = tmp_path / "root"
    identities = []
    for seed in (0, 1):
        probe = write_case(tmp_path / f"probe{seed}", seed)
        (root / probe["PatientID"] / "reference").mkdir(parents=True)
        identities.append(write_case(root / probe["PatientID"], seed))
    (root / "broken").mkdir()
    (root / "broken" / "x.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"junk")
    logger = logging.getLogger("cervseg")
    records, previous = Records(), logger.level
    records.addFilter(HideCaseFolders(root))
    logger.addHandler(records)
    logger.setLevel(logging.DEBUG)
    try:
        client = TestClient(create_app(root, tmp_path / "review.sqlite"))
        for case in client.get("/api/cases").json():
            meta = client.get(f"/api/cases/{case['id']}").json()
            client.get(f"/api/cases/{case['id']}/slices/{meta['contour_slices'][0]}/image")
    finally:
        logger.removeHandler(records)
        logger.setLevel(previous)
    text = "\n".join(records.lines)
    assert "loaded" in text and "skipped" in text
    for who in identities:
        assert who["PatientID"] not in text and str(who["PatientName"]) not in text
