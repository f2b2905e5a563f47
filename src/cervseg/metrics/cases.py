"""Find, pair and read the patient folders that `evaluate` and `compare` score.

A case folder is either a DICOM folder (CT + RTSTRUCT in any layout; a prediction folder
may hold the RTSTRUCT alone, as `cervseg segment` writes it) or a `convert`-style NIfTI
folder (``image.nii.gz`` + ``masks/<Name>.nii.gz``). A ROOT folder holds one case folder
per patient; reference and prediction roots are paired by subfolder name.

Structures are matched by name through the catalogue. A suffix (``--prediction-suffix
_DL``) keeps only the ROIs whose name ends with it and strips it before matching, so that
one RTSTRUCT holding manual contours (``Vescica``) and automatic ones (``Bladder_DL``)
serves as both reference and prediction. Predictions are always read onto the
reference's grid: DICOM contours are rasterised on the reference CT, NIfTI masks must lie
on exactly its voxels (never resampled).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom

from cervseg.dicom.rasterize import choose_rois, read_structures
from cervseg.dicom.rtstruct_read import RTStruct, find_rtstruct, read_rtstruct
from cervseg.dicom.series import FolderScan, read_ct_series, scan_folder
from cervseg.errors import InputError, StructureError
from cervseg.nifti import mask_files, read_mask, read_volume, structure_name
from cervseg.structures import Catalogue, Template, match_names
from cervseg.volume import Geometry, LabelMap, Volume

log = logging.getLogger(__name__)

NIFTI = "nifti"
DICOM = "dicom"
RTSTRUCT = "RTSTRUCT"


@dataclass(frozen=True)
class CaseFolder:
    """One patient's folder on one side (reference or a prediction)."""

    patient: str
    path: Path
    kind: str  # NIFTI or DICOM


def _is_dicom_file(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _visible_files(folder: Path, recursive: bool) -> list[Path]:
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _is_nifti_case(folder: Path) -> bool:
    return (folder / "masks").is_dir()


def _dicom_modalities(folder: Path) -> set[str]:
    """Modalities of the DICOM files below a folder (stops early once an RTSTRUCT is seen)."""
    modalities: set[str] = set()
    for path in _visible_files(folder, recursive=True):
        if not _is_dicom_file(path):
            continue
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"])
        except Exception:  # an unreadable file is reported by the real reader later
            continue
        modalities.add(str(header.get("Modality", "")).upper())
        if RTSTRUCT in modalities:
            break
    return modalities


def find_cases(folder: Path, role: str) -> tuple[bool, list[CaseFolder]]:
    """(is_root, cases) for a reference or prediction folder.

    A folder is one case when it holds ``masks/`` or DICOM files directly, or when one of its
    DICOM subfolders has no RTSTRUCT (a CT/ + RS/ layout of one patient). Otherwise every
    subfolder holding ``masks/`` or an RTSTRUCT is one patient.
    """
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"{folder}: {role} folder not found")
    if not folder.is_dir():
        raise InputError(f"{folder}: {role} is not a folder")
    name = folder.resolve().name
    if _is_nifti_case(folder):
        return False, [CaseFolder(name, folder, NIFTI)]
    if any(_is_dicom_file(p) for p in _visible_files(folder, recursive=False)):
        return False, [CaseFolder(name, folder, DICOM)]
    cases: list[CaseFolder] = []
    nested_single = False
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if _is_nifti_case(sub):
            cases.append(CaseFolder(sub.name, sub, NIFTI))
            continue
        modalities = _dicom_modalities(sub)
        if RTSTRUCT in modalities:
            cases.append(CaseFolder(sub.name, sub, DICOM))
        elif modalities:
            nested_single = True  # e.g. patient/CT/*.dcm beside patient/RS/*.dcm
    if nested_single and cases:
        return False, [CaseFolder(name, folder, DICOM)]
    if not cases:
        raise InputError(
            f"{folder}: {role} holds no case: no DICOM RTSTRUCT and no masks/ folder "
            "(expected a DICOM folder, a convert-style NIfTI folder, or one such folder per patient)"
        )
    return True, cases


def pair_cases(
    reference: Path, prediction: Path, role: str = "prediction", single_name: str | None = None
) -> list[tuple[CaseFolder, CaseFolder]]:
    """(reference case, prediction case) pairs: one pair, or one per patient subfolder name.

    A single pair is named ``single_name`` when given, else after the reference folder.
    """
    ref_root, refs = find_cases(reference, "reference")
    pred_root, preds = find_cases(prediction, role)
    if not ref_root and not pred_root:
        name = single_name or refs[0].patient
        return [(dataclasses.replace(refs[0], patient=name), dataclasses.replace(preds[0], patient=name))]
    if single_name:
        log.warning("--patient %s ignored: patients are named after their subfolders", single_name)
    if ref_root != pred_root:
        which = "reference" if ref_root else role
        raise InputError(
            f"{reference if ref_root else prediction}: the {which} is a folder of {len(refs if ref_root else preds)} "
            f"patients but the other side is a single patient folder; give two patient folders or two roots"
        )
    by_name = {c.patient: c for c in preds}
    pairs = [(r, by_name[r.patient]) for r in refs if r.patient in by_name]
    only_ref = [r.patient for r in refs if r.patient not in by_name]
    only_pred = [p.patient for p in preds if p.patient not in {r.patient for r in refs}]
    if only_ref:
        log.warning("patients with a reference but no %s (skipped): %s", role, ", ".join(only_ref))
    if only_pred:
        log.warning("patients with a %s but no reference (skipped): %s", role, ", ".join(only_pred))
    if not pairs:
        raise InputError(
            f"{prediction}: no patient subfolder name in common with the reference {reference} "
            f"(reference: {', '.join(r.patient for r in refs[:5])}; {role}: {', '.join(p.patient for p in preds[:5])})"
        )
    return pairs


def evaluation_template(catalogue: Catalogue) -> Template:
    """Every catalogue structure except the body outline: what `evaluate` scores by default."""
    names = tuple(n for n, s in catalogue.structures.items() if s.roi_type.upper() != "EXTERNAL")
    return Template("catalogue", names)


def strip_suffix(names: list[str], suffix: str) -> dict[str, str]:
    """{name without suffix: original name} for the names ending with ``suffix`` (case-insensitive).

    An empty suffix keeps every name unchanged.
    """
    if not suffix:
        return {n: n for n in names}
    kept = {}
    for n in names:
        if n.lower().endswith(suffix.lower()) and len(n) > len(suffix):
            kept[n[: -len(suffix)]] = n
    return kept


@dataclass
class ReadCase:
    """A case as read for evaluation: the CT (None for masks without image) and the structures."""

    image: Volume | None
    labels: LabelMap
    source: str  # file or folder the structures came from, for messages


class CaseReader:
    """Reads case folders with one catalogue/template, remembering the last DICOM folder.

    Why the memory: the real-case example reads one folder as reference (manual ROIs) and
    as prediction (``_DL`` ROIs); its CT and RTSTRUCT are then read once.
    """

    def __init__(self, catalogue: Catalogue, template: Template, roi_numbers: dict[str, int] | None = None):
        self.catalogue = catalogue
        self.template = template
        self.roi_numbers = dict(roi_numbers or {})  # ROI name -> ROINumber where names repeat
        self._cached: tuple[Path, FolderScan, dict[str, object]] | None = None

    def _scan(self, folder: Path) -> tuple[FolderScan, dict[str, object]]:
        key = Path(folder).resolve()
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, scan_folder(folder), {})
        return self._cached[1], self._cached[2]

    def _ct(self, folder: Path) -> Volume:
        scan, memo = self._scan(folder)
        if "ct" not in memo:
            memo["ct"] = read_ct_series(folder, scan=scan)
        return memo["ct"]  # type: ignore[return-value]

    def _rtstruct(self, folder: Path, series_uid: str | None) -> RTStruct:
        scan, memo = self._scan(folder)
        key = f"rs:{series_uid}"
        if key not in memo:
            memo[key] = read_rtstruct(find_rtstruct(folder, referenced_series_uid=series_uid, scan=scan))
        return memo[key]  # type: ignore[return-value]

    def _match(self, names: list[str], suffix: str, where: str) -> dict[str, str]:
        """{canonical name: original ROI/file name} after suffix stripping and catalogue matching."""
        stripped = strip_suffix(names, suffix)
        if suffix and not stripped:
            raise StructureError(f"{where}: no structure name ends with '{suffix}' (names: {', '.join(names) or 'none'})")
        match = match_names(list(stripped), self.template, self.catalogue)
        for canonical, rois in match.duplicates.items():
            log.warning("%s: several names match %s: %s (used %s)", where, canonical, ", ".join(stripped[r] for r in rois), stripped[rois[0]])
        found = {canonical: stripped[name] for canonical, name in match.matched.items()}
        for canonical, original in found.items():
            log.info("%s: %s -> %s", where, original, canonical)
        if match.unmatched_rois:
            log.info("%s: not evaluated (no structure of the catalogue/template): %s", where,
                     ", ".join(stripped[n] for n in match.unmatched_rois))
        return found

    def _dicom_labels(self, folder: Path, suffix: str, volume: Volume) -> ReadCase:
        rtstruct = self._rtstruct(folder, volume.series.series_instance_uid or None)
        found = self._match(rtstruct.roi_names(), suffix, str(rtstruct.path))
        rtstruct = choose_rois(rtstruct, set(found.values()),
                               {n: k for n, k in self.roi_numbers.items() if rtstruct.roi_names().count(n) > 1})
        rois = [dataclasses.replace(rtstruct.roi(original), name=canonical) for canonical, original in found.items()]
        renamed = dataclasses.replace(rtstruct, rois=rois)
        only = Template(self.template.name, tuple(found))
        labels, _ = read_structures(renamed, volume, only, self.catalogue)
        return ReadCase(volume, labels, str(rtstruct.path))

    def _nifti_labels(self, folder: Path, suffix: str, geometry: Geometry, image: Volume | None) -> ReadCase:
        files = {structure_name(p): p for p in mask_files(folder / "masks")}
        found = self._match(list(files), suffix, str(folder / "masks"))
        labels = LabelMap(geometry, {canonical: read_mask(files[original], geometry) for canonical, original in found.items()})
        return ReadCase(image, labels, str(folder / "masks"))

    def reference(self, case: CaseFolder, suffix: str = "") -> ReadCase:
        """The reference structures on the reference CT grid."""
        if case.kind == DICOM:
            return self._dicom_labels(case.path, suffix, self._ct(case.path))
        image_path = case.path / "image.nii.gz"
        if image_path.is_file():
            image: Volume | None = read_volume(image_path)
            geometry = image.geometry  # type: ignore[union-attr]
        else:
            first = mask_files(case.path / "masks")[0]
            header = nib.load(str(first))
            geometry = Geometry.from_nifti_affine(header.affine, header.shape[:3])
            image = None
            log.info("%s: no image.nii.gz; the grid of %s is used and overlays have no CT", case.path, first.name)
        return self._nifti_labels(case.path, suffix, geometry, image)

    def prediction(self, case: CaseFolder, reference: ReadCase, suffix: str = "") -> ReadCase:
        """The predicted structures on the reference's grid."""
        geometry = reference.labels.geometry
        if case.kind == NIFTI:
            return self._nifti_labels(case.path, suffix, geometry, reference.image)
        volume = reference.image if reference.image is not None else Volume(np.zeros(geometry.shape, np.int16), geometry)
        return self._dicom_labels(case.path, suffix, volume)
