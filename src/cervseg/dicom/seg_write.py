"""LabelMap -> DICOM Segmentation (binary, one segment per structure) through highdicom.

Why DICOM-SEG beside the RTSTRUCT: PACS viewers and research tools read SEG voxel-exactly,
without a polygon round trip. highdicom does the IOD correctly, so we only map our
structures to its segment descriptions (SNOMED codes from the catalogue).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

import cervseg
from cervseg.errors import GeometryError, InputError
from cervseg.outputs import atomic_file
from cervseg.structures import Catalogue
from cervseg.volume import LabelMap, Volume

log = logging.getLogger(__name__)

_GENERIC_TYPE = ("SCT", "91772007", "Organ")
_GENERIC_CATEGORY = ("SCT", "91723000", "Anatomical structure")


def _code(triple: tuple[str, str, str]) -> Code:
    scheme, value, meaning = triple
    return Code(value=value, scheme_designator=scheme, meaning=meaning)


def _concept(triple: tuple[str, str, str]) -> dict[str, str]:
    scheme, value, meaning = triple
    return {"value": value, "scheme_designator": scheme, "meaning": meaning}


#: Type 2 attributes of the Patient and General Study modules that highdicom copies from the
#: source images; de-identified exports often drop them, and an empty value is what Type 2 allows.
TYPE2_COPIED = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
    "StudyDate", "StudyTime", "ReferringPhysicianName",
)


def _source_datasets(volume: Volume) -> list[pydicom.Dataset]:
    """The CT slices' headers in array order (SEG frames reference them one to one).

    Type 2 attributes missing from a de-identified export are added empty (in memory only),
    as the SEG's own Patient and General Study modules require them present.
    """
    files = volume.series.source_files
    if len(files) != volume.geometry.shape[0]:
        raise InputError("DICOM-SEG needs the CT's source files, one per slice (volume has none)")
    datasets = [pydicom.dcmread(f, stop_before_pixels=True, force=True) for f in files]
    if not datasets[0].get("StudyInstanceUID"):
        raise InputError(f"{files[0]}: CT without StudyInstanceUID, a DICOM-SEG cannot reference its study")
    for ds in datasets:
        for keyword in TYPE2_COPIED:
            if keyword not in ds:
                setattr(ds, keyword, "")
    uids = [str(ds.SOPInstanceUID) for ds in datasets]
    if tuple(uids) != tuple(volume.series.sop_instance_uids):
        raise GeometryError("DICOM-SEG: source files are not in the volume's slice order")
    return datasets


def build_seg(
    labels: LabelMap,
    volume: Volume,
    *,
    catalogue: Catalogue | None = None,
    algorithm_name: str = "cervseg",
    series_description: str = "cervseg automatic segmentation",
) -> hd.seg.Segmentation:
    """A binary Segmentation of every non-empty structure, referencing the CT slices."""
    labels.require_grid(volume.geometry)
    catalogue = catalogue or Catalogue.builtin()
    names = [n for n in labels if labels[n].any()]
    if not names:
        raise InputError("no non-empty structure to write into a DICOM-SEG")
    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name,
        version=cervseg.__version__,
        family=_code(("DCM", "123110", "Artificial Intelligence")),
    )
    descriptions = []
    for number, name in enumerate(names, start=1):
        canonical = catalogue.canonical(name)
        structure = catalogue.structures[canonical] if canonical else None
        description = (
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=name[:64],
                segmented_property_category=_code(structure.category if structure and structure.category else _GENERIC_CATEGORY),
                segmented_property_type=_code(structure.code if structure and structure.code else _GENERIC_TYPE),
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
                anatomic_regions=None,
            )
        )
        if structure and structure.laterality:
            # the modifier lives inside the property type item (PS3.3 C.8.20.2); highdicom
            # has no argument for it
            modifier = hd.sr.CodedConcept(**_concept(structure.laterality))
            description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [modifier]
        descriptions.append(description)
    pixels = np.stack([labels[n] for n in names], axis=-1).astype(np.uint8)  # (frames, rows, cols, segments)
    sources = _source_datasets(volume)
    with warnings.catch_warnings():
        # a de-identified PatientName such as "Pelvic-Ref-002" is copied as it is, not repaired
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name")
        return _segmentation(sources, pixels, descriptions, series_description)


def _segmentation(sources: list[pydicom.Dataset], pixels: np.ndarray, descriptions: list,
                  series_description: str) -> hd.seg.Segmentation:
    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(),
        series_number=902,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="cervseg",
        manufacturer_model_name="cervseg",
        software_versions=cervseg.__version__,
        device_serial_number="0",
        series_description=series_description[:64],
        omit_empty_frames=True,
    )


def write_seg(labels: LabelMap, volume: Volume, out_file: Path, **kwargs: object) -> Path:
    """Write the Segmentation atomically."""
    seg = build_seg(labels, volume, **kwargs)  # type: ignore[arg-type]
    with atomic_file(Path(out_file)) as tmp:
        seg.save_as(tmp)
    # debug: callers that stage outputs (segment) report the final path themselves
    log.debug("DICOM-SEG written to %s (%d segments)", out_file, len(seg.SegmentSequence))
    return Path(out_file)
