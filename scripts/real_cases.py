"""The two real CTs of ../shared/data with their references, keyed by cervix structure name.

Why one module: scoring a model on them (`evaluate_real.py`) and adding them to a training
set (`train_builtin_model.py --recipe real-*`) must read the same references the same way.

References (../shared/data/README.md):
- pelvic-ref-002: manual contours Vescica -> Bladder, Retto -> Rectum, FemoreSinistro ->
  Femur_Head_L, FemoreDestro -> Femur_Head_R; bone labels pelvis (1) + sacrum (3) -> BoneMarrow.
- totalseg-example (TotalSegmentator labels, a model's, not a clinician's): urinary_bladder
  (104) -> Bladder, hip_left + hip_right + sacrum (90, 91, 92) -> BoneMarrow, small_bowel
  (55) -> Bowel_Small.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def load_002():
    """The 002 CT and its references, keyed by cervix structure name, with their source."""
    from cervseg.dicom.rasterize import read_structures
    from cervseg.dicom.rtstruct_read import read_rtstruct
    from cervseg.dicom.series import read_ct_series

    folder = DATA / "pelvic-ref-002"
    volume = read_ct_series(folder / "dicom")
    manual, _ = read_structures(read_rtstruct(next((folder / "dicom").glob("RS*.dcm"))), volume, "prostate")
    raw = zlib.decompress((folder / "bone-labels" / "label.zraw").read_bytes())
    bones = np.frombuffer(raw, np.int16).reshape(volume.array.shape)  # same grid (data README), z-y-x
    references = {name: (manual[name], "manual contour") for name in
                  ("Bladder", "Rectum", "Femur_Head_L", "Femur_Head_R")}
    references["BoneMarrow"] = (np.isin(bones, (1, 3)), "bone labels: pelvis + sacrum")
    return volume, references


def load_totalseg():
    """The totalseg-example CT (on its own NIfTI grid) and its label-map references."""
    from cervseg.nifti import load_3d, read_volume

    folder = DATA / "totalseg-example"
    volume = read_volume(folder / "example_ct.nii.gz")
    _, seg = load_3d(folder / "example_seg.nii.gz", "label map")
    labels = np.ascontiguousarray(np.transpose(np.asarray(seg), (2, 1, 0)))  # same affine as the CT
    references = {
        "Bladder": (labels == 104, "TotalSegmentator urinary_bladder"),
        "BoneMarrow": (np.isin(labels, (90, 91, 92)), "TotalSegmentator hips + sacrum"),
        "Bowel_Small": (labels == 55, "TotalSegmentator small_bowel"),
    }
    return volume, references


CASES = {"pelvic-ref-002": load_002, "totalseg-example": load_totalseg}

#: pelvic-ref-002's two automatic contour sets made by RayStation (../shared/data/README.md):
#: the ROI of each set for each structure that has a manual reference
CLINICAL_SYSTEM_002 = {
    "DL": {"Bladder": "Bladder_DL", "Rectum": "Anorectum_DL", "Femur_Head_L": "Femur_Head_L_DL",
           "Femur_Head_R": "Femur_Head_R_DL"},
    "MBS": {"Bladder": "Bladder_MBS", "Rectum": "Rectum_MBS", "Femur_Head_L": "FemoralHead (Left)_MBS",
            "Femur_Head_R": "FemoralHead (Right)_MBS"},
}


def clinical_system_002(kind: str, volume) -> dict[str, np.ndarray]:
    """002's RayStation automatic contours of one set (``DL`` or ``MBS``) on its CT grid, by
    cervix structure name: what a clinical auto-contouring system does on this very patient."""
    from cervseg.dicom.rasterize import rasterize_roi
    from cervseg.dicom.rtstruct_read import read_rtstruct

    rtstruct = read_rtstruct(next((DATA / "pelvic-ref-002" / "dicom").glob("RS*.dcm")))
    return {structure: rasterize_roi(rtstruct.roi(roi).contours, volume.geometry, name=roi)
            for structure, roi in CLINICAL_SYSTEM_002[kind].items()}


def build_real_cache(out: Path, cases: Sequence[str], structures: Sequence[str]) -> dict:
    """A training cache of some real cases, partially labelled (each has only its references),
    all in the training split; returns the manifest."""
    from cervseg.data.cache import PatientRecord, build_cache
    from cervseg.volume import LabelMap, canonical_labels, canonical_volume

    def read(folder: Path) -> PatientRecord:
        volume, references = CASES[folder.name]()
        labels = LabelMap(volume.geometry, {s: mask for s, (mask, _) in references.items() if s in structures})
        info = {"references": {s: source for s, (_, source) in references.items() if s in structures}}
        return PatientRecord(canonical_volume(volume), canonical_labels(labels), info)

    return build_cache(out, [DATA / c for c in cases], read, structures, val_fraction=0.0, test_fraction=0.0,
                       partial=True, extra={"template": "cervix", "source_root": str(DATA)})


def write_reference_case(case: str, out: Path) -> Path:
    """A `convert`-style NIfTI case folder (image.nii.gz + masks/) of one real case's references,
    which `cervseg evaluate --reference` and a study's extra_tests read."""
    from cervseg.nifti import write_case
    from cervseg.volume import LabelMap

    volume, references = CASES[case]()
    return write_case(volume, LabelMap(volume.geometry, {s: mask for s, (mask, _) in references.items()}), out)


def main(argv: Sequence[str] | None = None) -> int:
    """`python scripts/real_cases.py --case totalseg-example --out study/totalseg-example`."""
    import argparse
    import logging

    parser = argparse.ArgumentParser(description=write_reference_case.__doc__)
    parser.add_argument("--case", choices=sorted(CASES), required=True)
    parser.add_argument("--out", type=Path, required=True, help="the case folder to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    if not (DATA / args.case).is_dir():
        logging.error("%s: the real case is not there (../shared/data beside the repository)", DATA / args.case)
        return 2
    logging.info("wrote %s", write_reference_case(args.case, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
