"""A patient folder (planning CT + RTSTRUCT, any layout) -> Volume + LabelMap in one call.

Why one call: `convert`, `dataset`, `evaluate` and the phantom checks all need "the CT and
its structures" and must not each re-decide which series, which RTSTRUCT and which names.
The folder is scanned once; the RTSTRUCT referencing the chosen CT series is preferred.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from cervseg.dicom.rasterize import read_structures
from cervseg.dicom.rtstruct_read import RTStruct, find_rtstruct, read_rtstruct
from cervseg.dicom.series import read_ct_series, scan_folder
from cervseg.errors import SeriesSelectionError
from cervseg.structures import Catalogue, NameMatch, Template, load_template, match_names
from cervseg.volume import LabelMap, Volume

log = logging.getLogger(__name__)


@dataclass
class Patient:
    """The CT of a patient folder and the template's structures drawn on it."""

    volume: Volume
    labels: LabelMap  # canonical structure name -> mask on the CT grid
    match: NameMatch  # how the file's ROI names mapped to the template
    rtstruct_path: Path | None  # None only when require_rtstruct=False and none was found
    # template structures the RTSTRUCT names without a contour (a placeholder, or "none here")
    declared_empty: list[str] = field(default_factory=list)


def read_patient(
    folder: Path,
    template: str | Path | Template = "cervix",
    names_file: Path | None = None,
    series_uid: str | None = None,
    *,
    rtstruct_uid: str | None = None,
    require_rtstruct: bool = True,
    roi_numbers: dict[str, int] | None = None,
) -> Patient:
    """Read the CT series and its RTSTRUCT from a folder tree.

    ``series_uid`` chooses among several CT series, ``rtstruct_uid`` (SOPInstanceUID, or the
    path or name of the file) among several RTSTRUCTs, ``roi_numbers`` among ROIs sharing a name. Without an RTSTRUCT the call fails unless ``require_rtstruct`` is
    False (then the LabelMap is empty and every template structure is reported missing).
    """
    folder = Path(folder)
    catalogue = Catalogue.builtin(names_file)
    tmpl = template if isinstance(template, Template) else load_template(template, catalogue)
    scan = scan_folder(folder)
    volume = read_ct_series(folder, series_uid, scan=scan)
    try:
        rs_path = find_rtstruct(
            folder, referenced_series_uid=volume.series.series_instance_uid,
            sop_instance_uid=rtstruct_uid, scan=scan,
        )
    except SeriesSelectionError:
        has_any = any(str(f.header.get("Modality", "")) == "RTSTRUCT" for f in scan.files)
        if require_rtstruct or has_any:
            raise
        log.info("%s: no RTSTRUCT; CT only", folder)
        return Patient(volume, LabelMap(volume.geometry), match_names([], tmpl, catalogue), None)
    rtstruct = read_rtstruct(rs_path)
    labels, match = read_structures(rtstruct, volume, tmpl, catalogue, roi_numbers)
    return Patient(volume, labels, match, rs_path, _declared_empty(rtstruct, tmpl, catalogue, labels))


def _declared_empty(rtstruct: RTStruct, template: Template, catalogue: Catalogue, labels: LabelMap) -> list[str]:
    """Template structures an ROI of the RTSTRUCT names but no ROI draws.

    What such an ROI means is the caller's choice: in a clinical export usually a template
    placeholder nobody drew, in ground truth written with ``write_empty`` "none here".
    """
    named = {catalogue.canonical(name) for name in rtstruct.empty_rois}
    return [s for s in template.structures if s in named and s not in labels]
