"""Checkpoint -> Predictor.predict(Volume) -> LabelMap on the CT's own grid.

Why this shape: a clinic's contouring node loads a checkpoint folder and nothing else; the
predictor applies exactly the plan saved with the model (intensity, pixel size, crop, 2.5D
context), so training and inference cannot drift apart. It never imports training code.

Geometry: the CT is first flipped to the HFS layout the network learned (see
``Geometry.canonical_flips``); its body is found once, which places the plan's grid
(``data.grid``) and gives the midline that sides the femoral heads. Each slice is resampled
to the plan's pixel size, predicted, and the *probabilities* are resampled back to the CT's
grid before they are decided (threshold or argmax), then flipped back, so an FFS or prone
series gets its contours on the right side of the patient. When the CT's pixels are the
plan's (always so for a pixel plan) the grid is a crop: nothing is interpolated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from cervseg.config import PreprocessConfig
from cervseg.data.preprocess import BodyBox, Preprocessor, SliceGrid
from cervseg.errors import InputError
from cervseg.infer.channel_windows import decide_channels, probability_bytes
from cervseg.models.checkpoint import LoadedCheckpoint, load_checkpoint
from cervseg.models.output_modes import split_femoral_heads, to_probabilities
from cervseg.progress import progress
from cervseg.structures import left_right_swap
from cervseg.threads import inference_threads
from cervseg.volume import Geometry, LabelMap, Volume, flip_array

log = logging.getLogger(__name__)


@dataclass
class Prediction:
    """The masks on the CT's grid, and the one body detection they were placed by."""

    labels: LabelMap
    body: BodyBox | None  # in the canonical (HFS-like) layout of ``canonical_geometry``
    canonical_geometry: Geometry
    grid: SliceGrid

    @property
    def midline_x(self) -> float | None:
        """Patient x (LPS mm) of the body's centre: what separates the femoral heads."""
        return None if self.body is None else self.body.midline_x(self.canonical_geometry)


class Predictor:
    """Runs a checkpoint's model over every slice of a CT volume."""

    def __init__(
        self,
        checkpoint: LoadedCheckpoint,
        *,
        batch_size: int = 8,
        flip_tta: bool = False,
        threshold: float = 0.5,
        threads: int | None = None,
    ) -> None:
        self.checkpoint = checkpoint
        self.metadata = checkpoint.metadata
        # channels-last memory: oneDNN's fastest convolution layout on CPU (docs/benchmarks.md,
        # benchmarks/inference_backends.py)
        self.model = checkpoint.model.eval().to(memory_format=torch.channels_last)
        self.preprocessor = Preprocessor(PreprocessConfig.model_validate(self.metadata.preprocess))
        self.batch_size = max(1, int(batch_size))
        self.flip_tta = flip_tta
        self.threshold = threshold
        self.threads = threads or inference_threads()
        self._swap = left_right_swap(self.metadata.channels)

    @classmethod
    def from_checkpoint(cls, directory: Path | str, **kwargs: object) -> "Predictor":
        """Load a checkpoint folder (clear error when it is missing or broken)."""
        return cls(load_checkpoint(Path(directory)), **kwargs)  # type: ignore[arg-type]

    @property
    def structures(self) -> list[str]:
        return self.metadata.structures

    @property
    def model_description(self) -> str:
        """Short text for RTSTRUCT descriptions: model name and what it was trained on."""
        summary = self.metadata.training_summary or {}
        trained_on = summary.get("description")
        if not trained_on and summary.get("train_patients"):
            trained_on = f"{len(summary['train_patients'])} patients of cache {Path(str(summary.get('cache', ''))).name}"
        return f"{self.metadata.model_name} ({self.checkpoint.path.name}; trained on {trained_on or 'unspecified data'})"

    def _batches(self, n: int) -> Iterator[range]:
        for start in range(0, n, self.batch_size):
            yield range(start, min(n, start + self.batch_size))

    def _probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        mode = self.metadata.output_mode
        batch = batch.contiguous(memory_format=torch.channels_last)
        probs = to_probabilities(self.model(batch), mode)
        if self.flip_tta:
            mirrored_input = torch.flip(batch, dims=[-1]).contiguous(memory_format=torch.channels_last)
            mirrored = to_probabilities(self.model(mirrored_input), mode)
            # un-mirror in space, and swap L/R channels: a mirrored patient's left is our right
            probs = (probs + torch.flip(mirrored, dims=[-1])[:, self._swap]) / 2.0
        return probs

    def _warn_if_body_outside(self, body: BodyBox, grid: SliceGrid, pixel_mm: tuple[float, ...]) -> None:
        """Say so when the plan's crop cuts the body: nothing outside is contoured.

        ``body`` (body_bounding_box) is in the canonical (HFS-like) layout, so low columns are
        the patient's right and low rows anterior; the margins are named in patient terms.
        """
        cut = [f"{mm:.0f} mm {side}" for side, mm in grid.outside_mm(body, pixel_mm).items() if mm > 0]
        if not cut:
            return
        cfg = self.preprocessor.cfg
        if cfg.millimetre_plan:
            top, bottom, left, right = grid.extent()
            crop = f"{(bottom - top) * float(pixel_mm[0]):.0f} x {(right - left) * float(pixel_mm[1]):.0f} mm crop"
        else:
            h, w = grid.shape
            crop = f"{h} x {w} pixel crop ({h * float(pixel_mm[0]):.0f} x {w * float(pixel_mm[1]):.0f} mm)"
        log.warning(
            "the model's %s leaves out up to %s of the body: "
            "nothing there is contoured; check lateral structures (femoral heads) on review",
            crop, ", ".join(cut),
        )

    def _masks_on_window(self, on_window: np.ndarray, grid: SliceGrid) -> dict[str, np.ndarray]:
        """Decide the network's probabilities on the CT pixels the grid covers (``grid.window_of``).

        Outside that window every mask is empty (the model did not look there).
        """
        spec = self.metadata.output
        back = on_window
        if not grid.integral and spec.mode == "multiclass":  # resampled: background takes what softmax sums lack
            back = on_window.copy()
            back[:, 0] += 1.0 - back.sum(axis=1)
        return spec.decode(torch.from_numpy(back), probabilities=True, threshold=self.threshold)

    def _keep_probabilities(self, kept: dict[str, np.ndarray], on_window: np.ndarray, grid: SliceGrid,
                            zs: range, nz: int) -> None:
        """Store one batch's channel probabilities on the CT grid for ``predict(probabilities=...)``.

        uint8 1 + round(254 p) on the covered window; 0 is left for pixels the model never saw
        (outside its crop).
        """
        rows, cols = grid.covered_window()
        values = probability_bytes(on_window)
        for c, name in enumerate(self.metadata.channels):
            if name not in kept:
                kept[name] = np.zeros((nz, *grid.source_shape), dtype=np.uint8)
            kept[name][zs.start:zs.stop, rows, cols] = values[:, c]

    def _decide_by_channel(self, probs: np.ndarray, grid: SliceGrid, zs: range, shape: tuple[int, ...],
                           full: dict[str, np.ndarray], kept: dict[str, np.ndarray] | None) -> None:
        """Multilabel on a resampling grid: each channel resampled only where it is not ~0
        (``channel_windows``); the same masks and kept probabilities as resampling it all."""
        channels = self.metadata.channels
        for name in channels:
            if name not in full:
                full[name] = np.zeros(shape, dtype=bool)
            if kept is not None and name not in kept:
                kept[name] = np.zeros(shape, dtype=np.uint8)
        if kept is not None:
            rows, cols = grid.covered_window()
            for name in channels:
                kept[name][zs.start:zs.stop, rows, cols] = 1  # p = 0 where the model looked
        for c, (rows, cols), mask, values in decide_channels(probs, grid, self.threshold, kept is not None):
            full[channels[c]][zs.start:zs.stop, rows, cols] = mask
            if kept is not None:
                kept[channels[c]][zs.start:zs.stop, rows, cols] = values

    def predict(
        self, volume: Volume, show_progress: bool = True, probabilities: dict[str, np.ndarray] | None = None
    ) -> LabelMap:
        """Masks of every structure of the checkpoint, on the volume's own grid.

        ``probabilities``: a dict to fill with each output channel's probability on the
        volume's grid for the QA scores (`cervseg.qa`), as uint8 1 + round(254 p), and 0
        where the model did not look (outside its crop).
        """
        return self.predict_case(volume, show_progress=show_progress, probabilities=probabilities).labels

    def predict_case(
        self, volume: Volume, show_progress: bool = True, probabilities: dict[str, np.ndarray] | None = None
    ) -> Prediction:
        """``predict``, with the body box and grid it used (post-processing sides heads by it)."""
        geometry = volume.geometry
        flips = geometry.canonical_flips()
        canonical_geometry = geometry.flipped(flips)
        hu = np.ascontiguousarray(flip_array(volume.array, flips))
        if hu.shape[0] == 0:
            raise InputError("the CT volume has no slices")
        pixel_mm = tuple(float(s) for s in geometry.spacing[1:])
        body = self.preprocessor.body(hu)  # once: grid, crop warning and midline
        grid = self.preprocessor.grid(hu.shape, pixel_mm, body)
        if body is not None:
            self._warn_if_body_outside(body, grid, pixel_mm)
        full: dict[str, np.ndarray] = {}
        kept: dict[str, np.ndarray] = {}
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            rows, cols = grid.covered_window()
            by_channel = not grid.integral and self.metadata.output_mode == "multilabel"
            batches = list(self._batches(hu.shape[0]))
            bar = progress(batches, "segmenting", total=len(batches)) if show_progress else batches
            with torch.inference_mode():
                for zs in bar:
                    x = self.preprocessor.batch_input(hu, zs, grid)
                    probs = self._probabilities(torch.from_numpy(x)).float().numpy()
                    if by_channel:
                        self._decide_by_channel(probs, grid, zs, hu.shape, full,
                                                kept if probabilities is not None else None)
                        continue
                    # on the CT pixels the grid covers (the rest stays empty), resampled once per
                    # batch for the masks and the QA probabilities alike
                    on_window = grid.window_of(probs)
                    if probabilities is not None:
                        self._keep_probabilities(kept, on_window, grid, zs, hu.shape[0])
                    for name, m in self._masks_on_window(on_window, grid).items():
                        if name not in full:
                            full[name] = np.zeros(hu.shape, dtype=bool)
                        full[name][zs.start:zs.stop, rows, cols] = m
        finally:
            torch.set_num_threads(previous_threads)
        if probabilities is not None:
            for name, p in kept.items():
                probabilities[name] = np.ascontiguousarray(flip_array(p, flips))
        prediction = Prediction(LabelMap(geometry), body, canonical_geometry, grid)
        if "Femur_Head" in full:
            full.update(split_femoral_heads(full.pop("Femur_Head"), canonical_geometry, prediction.midline_x))
        for name in self.structures:
            if name in full:
                prediction.labels[name] = np.ascontiguousarray(flip_array(full[name], flips))
        log.info("predicted %d structures on %d slices", len(prediction.labels), hu.shape[0])
        return prediction
