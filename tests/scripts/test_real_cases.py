"""scripts/real_cases.py writes a real case's references as a NIfTI case folder: the same voxels
at the same place in the patient, checked with nibabel on the original files (world coordinates)."""

from __future__ import annotations

import sys

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import REPO, SHARED_DATA

sys.path.insert(0, str(REPO / "scripts"))
import real_cases  # noqa: E402  (a script, not a package)

TOTALSEG = SHARED_DATA / "totalseg-example"


def _world_centroid(image: nib.Nifti1Image, mask: np.ndarray) -> np.ndarray:
    ijk = np.argwhere(mask).mean(0)
    return nib.affines.apply_affine(image.affine, ijk)


@pytest.mark.skipif(not TOTALSEG.is_dir(), reason=f"real data not present at {TOTALSEG}")
def test_totalseg_reference_case_keeps_every_voxel_in_place(tmp_path):
    out = real_cases.write_reference_case("totalseg-example", tmp_path / "case")
    seg = nib.load(TOTALSEG / "example_seg.nii.gz")
    labels = np.asarray(seg.dataobj)
    for name, values in {"Bladder": (104,), "BoneMarrow": (90, 91, 92), "Bowel_Small": (55,)}.items():
        original = np.isin(labels, values)
        written = nib.load(out / "masks" / f"{name}.nii.gz")
        mask = np.asarray(written.dataobj) > 0
        assert mask.sum() == original.sum() > 0, name
        np.testing.assert_allclose(_world_centroid(written, mask), _world_centroid(seg, original), atol=1e-3)
    ct, image = nib.load(TOTALSEG / "example_ct.nii.gz"), nib.load(out / "image.nii.gz")
    assert sorted(np.asarray(image.dataobj).ravel().tolist()) == sorted(np.asarray(ct.dataobj).ravel().tolist())


def test_an_absent_case_is_one_line_and_exit_2(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(real_cases, "DATA", tmp_path / "nothing")
    assert real_cases.main(["--case", "totalseg-example", "--out", str(tmp_path / "case")]) == 2
    assert "the real case is not there" in caplog.text and not (tmp_path / "case").exists()


@pytest.mark.skipif(not (SHARED_DATA / "pelvic-ref-002").is_dir(), reason="real data not present")
def test_002_clinical_system_contours_agree_with_the_manual_ones_like_a_clinical_system():
    """RayStation's automatic bladders on 002 are 35-37 ml against the manual 38 ml: read and
    rasterised on the CT grid, each overlaps the manual bladder well, and its femoral heads
    lie on the patient's own side (both sets are independent of cervseg's models)."""
    from cervseg.metrics.overlap import dice

    volume, references = real_cases.CASES["pelvic-ref-002"]()
    for kind in ("DL", "MBS"):
        auto = real_cases.clinical_system_002(kind, volume)
        assert set(auto) == {"Bladder", "Rectum", "Femur_Head_L", "Femur_Head_R"}
        assert dice(references["Bladder"][0], auto["Bladder"]) > 0.8, kind
        assert dice(references["Femur_Head_L"][0], auto["Femur_Head_L"]) > 0.6, kind
        assert dice(references["Femur_Head_L"][0], auto["Femur_Head_R"]) == 0.0, kind
        assert 30 < auto["Bladder"].sum() * np.prod(volume.geometry.spacing) / 1000 < 45, kind
