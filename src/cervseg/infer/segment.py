"""The daily job: a CT folder in, an RTSTRUCT (and optionally NIfTI and DICOM-SEG) out.

Why a module apart from the CLI: the demo, the benchmarks and a future DICOM node run the
same job. All outputs of one run are staged in a hidden folder and moved into place only
when every one of them is complete, so a failure leaves nothing a planning system could
mistake for a result.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import cervseg
from cervseg.dicom.rtstruct_write import write_rtstruct
from cervseg.dicom.series import read_ct_series
from cervseg.errors import StructureError
from cervseg.infer.builtin import builtin_model_path
from cervseg.infer.postprocess import postprocess
from cervseg.infer.predictor import Prediction, Predictor
from cervseg.infer.scope import drop_unreached, seen_by, warn_if_outside_seen
from cervseg.qa.files import qa_file_name, write_qa_csv
from cervseg.qa.scores import slice_qa
from cervseg.outputs import (
    check_file_replaceable, check_replaceable, check_writable, ensure_not_inside, make_staging_dir, record_written_files,
)
from cervseg.structures import Catalogue, load_template
from cervseg.volume import LabelMap, Volume

log = logging.getLogger(__name__)


@dataclass
class SegmentResult:
    """What one run produced, with its timings in seconds."""

    volume: Volume
    labels: LabelMap
    outputs: list[Path]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def rtstruct(self) -> Path:
        return self.outputs[0]


def postprocess_rules(predictor: Predictor) -> dict[str, dict]:
    """Rules saved with the model, else those of the shipped template holding its structures."""
    extra = predictor.metadata.extra or {}
    if "postprocess" in extra:
        return dict(extra["postprocess"])
    template = load_template(str(extra.get("template", "cervix")))
    return {k: v for k, v in template.postprocess.items() if k in predictor.structures}


def contour_case(
    predictor: Predictor, volume: Volume, show_progress: bool = True, probabilities: dict[str, np.ndarray] | None = None
) -> tuple[LabelMap, Prediction]:
    """The model's masks after the checkpoint's post-processing, femoral heads sided by patient x,
    with the raw prediction (its body box and midline serve the QA scores too).

    Warns when the CT lies outside what the model saw, and empties a structure the scan does
    not reach rather than keep what the model invented there (infer.scope).
    ``probabilities``: filled with the model's channel probabilities (see Predictor.predict).
    """
    raw = predictor.predict_case(volume, show_progress=show_progress, probabilities=probabilities)
    seen = seen_by(predictor.metadata)
    warn_if_outside_seen(volume, raw, seen, predictor.preprocessor.cfg.body_threshold_hu,
                         predictor.metadata.model_name)
    labels = postprocess(raw.labels, postprocess_rules(predictor), midline_x=raw.midline_x)
    return drop_unreached(labels, seen), raw


def contour_volume(
    predictor: Predictor, volume: Volume, show_progress: bool = True, probabilities: dict[str, np.ndarray] | None = None
) -> LabelMap:
    """``contour_case`` without the raw prediction."""
    return contour_case(predictor, volume, show_progress, probabilities)[0]


def segment_series(
    dicom: Path,
    out: Path,
    *,
    model: Path | None = None,
    series_uid: str | None = None,
    nifti: bool = False,
    seg: bool = False,
    flip_tta: bool = False,
    batch_size: int = 8,
    names_file: Path | None = None,
    predictor: Predictor | None = None,
    threads: int | None = None,
    qa: bool = True,
) -> SegmentResult:
    """Contour one CT series; write RS_<SeriesInstanceUID>.dcm (+ QA_<uid>.csv, NIfTI, SEG) into ``out``.

    ``threads``: PyTorch intra-op threads (default: every core this process may use).
    """
    dicom, out = Path(dicom), Path(out)
    # every input is checked before the long work: output writable, names file readable
    check_writable(out)
    ensure_not_inside(out, dicom)
    catalogue = Catalogue.builtin(names_file)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    volume = read_ct_series(dicom, series_uid)
    timings["read"] = time.perf_counter() - start
    uid = volume.series.series_instance_uid
    names = output_names(uid, seg=seg, nifti=nifti, qa=qa)
    check_outputs_replaceable(out, names)  # before the long work: never overwrite the user's own copy

    t = time.perf_counter()
    predictor = predictor or Predictor.from_checkpoint(
        model or builtin_model_path(), flip_tta=flip_tta, batch_size=batch_size, threads=threads
    )
    timings["load_model"] = time.perf_counter() - t
    t = time.perf_counter()
    probabilities: dict[str, np.ndarray] | None = {} if qa else None
    labels, raw = contour_case(predictor, volume, probabilities=probabilities)
    timings["predict"] = time.perf_counter() - t

    t = time.perf_counter()
    description = f"AUTOMATIC contours by cervseg {cervseg.__version__}, model {predictor.model_description}. Review before use."
    created_out = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    staging = make_staging_dir(out, "segment")
    try:
        try:
            write_rtstruct(
                labels, volume, staging / names["rtstruct"], catalogue=catalogue, label="cervseg AUTO",
                description=description, series_description="cervseg automatic contours",
                roi_generation_algorithm="AUTOMATIC", algorithm_name=f"cervseg {predictor.metadata.model_name}",
            )
        except StructureError as exc:
            raise StructureError(f"{exc} (does model {predictor.metadata.model_name} suit this CT?)") from None
        if seg:
            from cervseg.dicom.seg_write import write_seg  # highdicom: only when a SEG is asked for

            write_seg(labels, volume, staging / names["seg"], catalogue=catalogue,
                      algorithm_name=f"cervseg {predictor.metadata.model_name}")
        if nifti:
            from cervseg.nifti import write_case  # nibabel: only when NIfTI is asked for

            write_case(volume, labels, staging / names["nifti"])
        if qa:
            t_qa = time.perf_counter()
            write_qa_csv(slice_qa(volume, labels, probabilities, catalogue, raw.midline_x), staging / names["qa"])
            timings["qa"] = time.perf_counter() - t_qa
        check_outputs_replaceable(out, names)  # nothing slipped in while we worked
        outputs = []
        for name in names.values():
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(staging / name, target)
            outputs.append(target)
        record_written_files(out, [p.name for p in outputs])
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created_out and not any(out.iterdir()):
            out.rmdir()  # a refused job leaves no trace, not even the folder it made
        raise
    shutil.rmtree(staging, ignore_errors=True)
    timings["write"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - start
    # file names only: a caller may have given a staging folder (the demo); it names the final place
    log.info(
        "%d slices contoured in %.1f s (%.3f s/slice end to end): %s",
        volume.geometry.shape[0], timings["total"], timings["total"] / volume.geometry.shape[0],
        ", ".join(p.name for p in outputs),
    )
    return SegmentResult(volume, labels, outputs, timings)


def output_names(uid: str, *, seg: bool, nifti: bool, qa: bool) -> dict[str, str]:
    """What ``segment_series`` writes for the series ``uid``, by kind, in writing order."""
    names = {"rtstruct": f"RS_{uid}.dcm"}
    if seg:
        names["seg"] = f"SEG_{uid}.dcm"
    if nifti:
        names["nifti"] = f"nifti_{uid}"  # a folder
    if qa:
        names["qa"] = qa_file_name(uid)
    return names


def check_outputs_replaceable(out: Path, names: dict[str, str]) -> None:
    """Refuse when an output would replace what cervseg did not write, or what was edited since."""
    for kind, name in names.items():
        (check_replaceable if kind == "nifti" else check_file_replaceable)(out / name)


def load_predictor(
    model: Path | None = None, *, flip_tta: bool = False, batch_size: int = 8, threads: int | None = None
) -> Predictor:
    """The model loaded once, for callers that contour many series (batch runs, the DICOM node).

    Pass it to ``segment_series(..., predictor=...)``; None loads the built-in model.
    """
    return Predictor.from_checkpoint(
        model or builtin_model_path(), flip_tta=flip_tta, batch_size=batch_size, threads=threads
    )
