"""Checkpoint -> Predictor.predict(Volume) -> LabelMap on the CT's own grid.

Why this shape: a clinic's contouring node loads a checkpoint folder and nothing else; the
predictor applies exactly the preprocessing saved with the model (intensity, crop, 2.5D
context), so training and inference cannot drift apart. It never imports training code.

Geometry: the CT is first flipped to the HFS layout the network learned (see
``Geometry.canonical_flips``), predicted slice by slice, un-cropped and flipped back, so
an FFS or prone series gets its contours on the right side of the patient.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from cervseg.config import PreprocessConfig
from cervseg.data.preprocess import CropBox, Preprocessor, body_bounding_box, crop_box_around
from cervseg.errors import InputError
from cervseg.models.checkpoint import LoadedCheckpoint, load_checkpoint
from cervseg.models.output_modes import split_femoral_heads, to_probabilities
from cervseg.infer.postprocess import midline_x_of_box
from cervseg.progress import progress
from cervseg.threads import inference_threads
from cervseg.volume import LabelMap, Volume, flip_array

log = logging.getLogger(__name__)


def _swap_pairs(channels: list[str]) -> list[int]:
    """Channel order that swaps every *_L / *_R pair (a mirrored patient's sides)."""
    index = {name: i for i, name in enumerate(channels)}
    order = []
    for name in channels:
        twin = name[:-2] + ("_R" if name.endswith("_L") else "_L") if name[-2:] in ("_L", "_R") else name
        order.append(index.get(twin, index[name]))
    return order


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
        self.preprocessor = Preprocessor(PreprocessConfig.model_validate(self.metadata.preprocessing))
        self.batch_size = max(1, int(batch_size))
        self.flip_tta = flip_tta
        self.threshold = threshold
        self.threads = threads or inference_threads()
        self._swap = _swap_pairs(self.metadata.channels)

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

    @staticmethod
    def _warn_if_body_outside(body: tuple[int, int, int, int], box: CropBox, pixel_mm: tuple[float, ...]) -> None:
        """Say so when the crop the model was trained with cuts the body: nothing outside is contoured.

        ``body`` (body_bounding_box) is in the canonical (HFS-like) layout, so low columns are
        the patient's right and low rows anterior; the margins are named in patient terms.
        """
        ymin, ymax, xmin, xmax = body
        row_mm, col_mm = float(pixel_mm[0]), float(pixel_mm[1])
        outside_mm = {
            "right": (box.x0 - xmin) * col_mm,
            "left": (xmax - (box.x0 + box.width - 1)) * col_mm,
            "anterior": (box.y0 - ymin) * row_mm,
            "posterior": (ymax - (box.y0 + box.height - 1)) * row_mm,
        }
        cut = [f"{mm:.0f} mm {side}" for side, mm in outside_mm.items() if mm > 0]
        if not cut:
            return
        log.warning(
            "the model's %d x %d pixel crop (%.0f x %.0f mm) leaves out up to %s of the body: "
            "nothing there is contoured; check lateral structures (femoral heads) on review",
            box.height, box.width, box.height * row_mm, box.width * col_mm, ", ".join(cut),
        )

    def predict(self, volume: Volume, show_progress: bool = True) -> LabelMap:
        """Masks of every structure of the checkpoint, on the volume's own grid."""
        geometry = volume.geometry
        flips = geometry.canonical_flips()
        canonical_geometry = geometry.flipped(flips)
        hu = np.ascontiguousarray(flip_array(volume.array, flips))
        if hu.shape[0] == 0:
            raise InputError("the CT volume has no slices")
        body = body_bounding_box(hu, self.preprocessor.cfg.body_threshold_hu)  # once: crop and report
        box = crop_box_around(body, hu.shape[-2:], self.preprocessor.cfg)
        if body is not None:
            self._warn_if_body_outside(body, box, geometry.spacing[1:])
        spec = self.metadata.output
        decoded: dict[str, np.ndarray] = {}
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            batches = list(self._batches(hu.shape[0]))
            bar = progress(batches, "segmenting", total=len(batches)) if show_progress else batches
            with torch.inference_mode():
                for zs in bar:
                    x = np.stack([self.preprocessor.slice_input(hu, z, box) for z in zs])
                    probs = self._probabilities(torch.from_numpy(x))
                    masks = spec.decode(probs, probabilities=True, threshold=self.threshold)
                    for name, m in masks.items():
                        if name not in decoded:
                            decoded[name] = np.zeros((hu.shape[0], box.height, box.width), dtype=bool)
                        decoded[name][zs.start:zs.stop] = m
        finally:
            torch.set_num_threads(previous_threads)
        full = {name: self.preprocessor.restore(m, box, fill=0).astype(bool) for name, m in decoded.items()}
        if "Femur_Head" in full:
            midline = midline_x_of_box(body, canonical_geometry)
            full.update(split_femoral_heads(full.pop("Femur_Head"), canonical_geometry, midline))
        labels = LabelMap(geometry)
        for name in self.structures:
            if name in full:
                labels[name] = np.ascontiguousarray(flip_array(full[name], flips))
        log.info("predicted %d structures on %d slices", len(labels), hu.shape[0])
        return labels
