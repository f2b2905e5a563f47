"""The training cache: many patients' CT and masks on disk, memory-mappable, with a manifest.

Why a cache: reading and rasterising DICOM takes seconds per patient; training touches
every slice many times. The cache keeps HU unaltered (int16, so any preprocessing can be
chosen later at training time) and masks bit-packed along x (8x smaller than bool, and
one slice is still one contiguous read), both as ``.npy`` files that
``np.load(mmap_mode="r")`` opens without loading.

Layout::

    CACHE/manifest.json                 structures, patients, geometry, skipped, splits
    CACHE/patients/<id>/image.npy       int16 (z, y, x) HU
    CACHE/patients/<id>/masks.npy       uint8 (z, S, y, ceil(x/8)), np.packbits(axis=-1, bitorder="little")

A patient whose structures are missing/empty or whose geometry is refused is listed under
``skipped`` with the reason and has no folder. With ``partial`` labels a patient that has
only some of the structures is kept: the others are stored as empty masks and left out of
its ``labelled`` list, so training does not teach "nothing here" where nobody contoured.
The whole cache is written to a temporary folder and renamed only when complete.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

import cervseg
from cervseg.data.splits import split_patients
from cervseg.errors import CervsegError, InputError, StructureError
from cervseg.outputs import atomic_dir, check_output_folder
from cervseg.progress import progress
from cervseg.structures import Catalogue, Template
from cervseg.volume import Geometry, LabelMap, SeriesInfo, Volume, canonical_labels, canonical_volume

log = logging.getLogger(__name__)

FORMAT = "cervseg-training-cache"
VERSION = 1
MANIFEST = "manifest.json"
INT16_MIN, INT16_MAX = -32768, 32767


def geometry_to_dict(g: Geometry) -> dict[str, Any]:
    return {
        "shape": list(g.shape), "spacing": list(g.spacing), "origin": list(g.origin),
        "axes": [list(a) for a in g.axes], "frame_of_reference_uid": g.frame_of_reference_uid,
    }


def geometry_from_dict(d: dict[str, Any]) -> Geometry:
    return Geometry(tuple(d["shape"]), tuple(d["spacing"]), tuple(d["origin"]),
                    tuple(tuple(a) for a in d["axes"]), d.get("frame_of_reference_uid", ""))


def pack_masks(masks: np.ndarray) -> np.ndarray:
    """(S, z, y, x) bool -> (z, S, y, ceil(x/8)) uint8, slice-major so one slice is one read."""
    m = np.ascontiguousarray(np.moveaxis(np.asarray(masks, dtype=bool), 0, 1))
    return np.packbits(m, axis=-1, bitorder="little")


def unpack_masks(packed: np.ndarray, width: int) -> np.ndarray:
    """Inverse of pack_masks for any leading shape (..., y, bytes) -> (..., y, width) bool."""
    return np.unpackbits(np.asarray(packed), axis=-1, count=width, bitorder="little").astype(bool)


@dataclass
class PatientRecord:
    """What the reader gives the writer for one accepted patient."""

    volume: Volume
    labels: LabelMap
    info: dict[str, Any] = field(default_factory=dict)  # e.g. rtstruct path, ROI names as found
    # labelled structures this patient has none of (a man's CTV_UV): all-zero masks that are
    # trained as "absent", not refused as an empty contour
    absent: list[str] = field(default_factory=list)


Reader = Callable[[Path], PatientRecord]


def refuses_missing(missing: Sequence[str], structures: Sequence[str], partial: bool) -> bool:
    """A patient lacking ``missing`` is refused: any one missing, or with partial labels all."""
    return bool(missing) and not (partial and len(missing) < len(structures))


class CacheWriter:
    """Collects patients into a folder (the caller makes that folder atomic)."""

    def __init__(self, folder: Path, structures: Sequence[str], partial: bool = False):
        self.folder = Path(folder)
        self.structures = list(structures)
        self.partial = bool(partial)
        self.patients: dict[str, dict[str, Any]] = {}
        self.skipped: list[dict[str, str]] = []

    def check(self, pid: str, record: PatientRecord) -> None:
        """Raise a CervsegError naming the reason when this patient cannot be used."""
        vol, labels = record.volume, record.labels
        missing = [s for s in self.structures if s not in labels]
        if refuses_missing(missing, self.structures, self.partial):
            raise InputError(f"missing structures: {', '.join(missing)}")
        labels.require_grid(vol.geometry)
        empty = [s for s in self.labelled(labels) if s not in record.absent and not labels[s].any()]
        if empty:
            raise InputError(f"empty structures: {', '.join(empty)}")
        if pid in self.patients:
            raise InputError(f"patient id '{pid}' appears twice")

    def labelled(self, labels: LabelMap) -> list[str]:
        """The structures this patient has contours of (all of them unless labels are partial)."""
        return [s for s in self.structures if s in labels]

    def add(self, pid: str, record: PatientRecord, source: str = "") -> None:
        """Check then write one patient; nothing is written when the check fails."""
        self.check(pid, record)
        vol, labels = record.volume, record.labels
        shape = vol.geometry.shape
        image = np.empty(shape, dtype=np.int16)
        packed = np.empty((shape[0], len(self.structures), shape[1], (shape[2] + 7) // 8), dtype=np.uint8)
        voxels = np.zeros(len(self.structures), dtype=np.int64)
        on_slice = np.zeros((len(self.structures), shape[0]), dtype=bool)
        clipped = 0
        labelled = self.labelled(labels)
        blank = np.zeros(shape[1:], dtype=bool)
        for z in range(shape[0]):  # slice by slice: memory stays a few slices, not a few volumes
            hu = np.rint(np.asarray(vol.array[z], dtype=np.float64))
            clipped += int(np.count_nonzero((hu < INT16_MIN) | (hu > INT16_MAX)))
            image[z] = np.clip(hu, INT16_MIN, INT16_MAX)
            masks = np.stack([np.asarray(labels[s][z], dtype=bool) if s in labelled else blank
                              for s in self.structures])
            packed[z] = np.packbits(masks, axis=-1, bitorder="little")
            voxels += masks.sum(axis=(1, 2))
            on_slice[:, z] = masks.any(axis=(1, 2))
        pdir = self.folder / "patients" / pid
        pdir.mkdir(parents=True)
        np.save(pdir / "image.npy", image)
        np.save(pdir / "masks.npy", packed)
        self.patients[pid] = {
            "source": source,
            "image": f"patients/{pid}/image.npy",
            "masks": f"patients/{pid}/masks.npy",
            "geometry": geometry_to_dict(vol.geometry),
            "patient_position": vol.series.patient_position,
            "series_instance_uid": vol.series.series_instance_uid,
            "voxels": {s: int(voxels[i]) for i, s in enumerate(self.structures)},
            "slices_with_structure": {s: int(on_slice[i].sum()) for i, s in enumerate(self.structures)},
            "slices_with_any_structure": int(on_slice.any(axis=0).sum()),
            "hu_clipped_voxels": clipped,
            "labelled": labelled,
            "absent": [s for s in self.structures if s in record.absent],
            **{k: v for k, v in record.info.items() if k not in ("geometry", "voxels")},
        }
        if clipped:
            log.warning("%s: %d voxels outside the int16 range were clipped", pid, clipped)

    def skip(self, pid: str, source: str, reason: str) -> None:
        log.warning("skipping %s: %s", source or pid, reason)
        self.skipped.append({"patient": pid, "source": source, "reason": reason})

    def finish(self, *, seed: int, val_fraction: float, test_fraction: float, extra: dict[str, Any]) -> dict:
        """Split the accepted patients and write manifest.json; returns the manifest."""
        if not self.patients:
            reasons = "; ".join(f"{s['patient']}: {s['reason']}" for s in self.skipped[:3])
            raise InputError(f"no usable patient ({len(self.skipped)} skipped{': ' + reasons if reasons else ''})")
        splits = split_patients(self.patients, val_fraction, test_fraction, seed)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "cervseg_version": cervseg.__version__,
            **extra,
            "structures": self.structures,
            "mask_packing": {"layout": "z,structure,y,xbytes", "bitorder": "little", "axis": "x"},
            "patients": self.patients,
            "skipped": self.skipped,
            "splits": {"seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction, **splits},
        }
        (self.folder / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        return manifest


def patient_folders(root: Path) -> list[Path]:
    """Every immediate sub-folder of root is one patient (sorted, hidden ones left out)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise InputError(f"{root}: no patient folders inside (one sub-folder per patient expected)")
    return folders


def dicom_patient_reader(template_name: str, names: Path | None, structures: Sequence[str],
                         partial: bool = False, empty_means_none: bool = False) -> Reader:
    """A Reader of patient DICOM folders (CT + RTSTRUCT) for ``build_cache``.

    Only the trained ``structures`` are reported missing; a patient lacking one is refused
    with a StructureError that names the ROIs nobody knows (the likely culprits for a
    clinic's own naming); with ``partial`` only a patient lacking all of them is. An ROI
    named without a contour is missing too, unless ``empty_means_none``: then the patient
    has none of it (ground truth written with ``write_empty``, a phantom man's CTV_UV) and
    it is trained as an all-zero mask. Off by default, because a clinical template's
    undrawn placeholder would teach the network that the organ is absent. Records are
    stored in the HFS layout so FFS/prone patients do not teach the network mirrored
    anatomy.
    """
    from cervseg.dicom.patient import read_patient  # pydicom: only when DICOM is read

    structures = list(structures)
    template = Template(template_name, tuple(structures))
    catalogue = Catalogue.builtin(names)

    def read(folder: Path) -> PatientRecord:
        patient = read_patient(folder, template, names)
        absent = [s for s in patient.declared_empty if s in structures] if empty_means_none else []
        drawn = [s for s in structures if s in patient.labels]
        missing = [s for s in structures if s not in drawn and s not in absent]
        if refuses_missing(missing, structures, partial):
            unmatched = [r for r in patient.match.unmatched_rois if catalogue.canonical(r) is None]
            hint = f" (ROIs that matched nothing: {', '.join(unmatched)}; map them with --names)" if unmatched else ""
            empty = [s for s in missing if s in patient.declared_empty]
            hint += f" ({', '.join(empty)}: named without a contour; --empty-roi-means-none if that means none)" \
                if empty else ""
            raise StructureError(f"missing structures: {', '.join(missing)}{hint}")
        labels = patient.labels.subset(drawn)
        for s in absent:
            labels[s] = np.zeros(patient.volume.geometry.shape, dtype=bool)
        info = {
            "rtstruct": str(patient.rtstruct_path),
            "roi_names": {s: patient.match.matched.get(s, s) for s in drawn},
        }
        return PatientRecord(canonical_volume(patient.volume), canonical_labels(labels), info, absent)

    return read


def _check_output(out: Path, root: Path | None) -> None:
    check_output_folder(out, [root] if root is not None else [])
    if out.exists():
        log.info("replacing the cache at %s", out)


def build_cache(
    out: Path,
    folders: Iterable[Path],
    reader: Reader,
    structures: Sequence[str],
    *,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    extra: dict[str, Any] | None = None,
    root: Path | None = None,
    partial: bool = False,
) -> dict:
    """Read every patient folder with ``reader`` and write the cache atomically; returns the manifest.

    A CervsegError from the reader (bad geometry, missing ROI, ...) skips that patient with
    the reason; any other exception is a bug and aborts without output.
    """
    out = Path(out)
    folders = list(folders)
    _check_output(out, root)
    with atomic_dir(out) as tmp:
        writer = CacheWriter(tmp, structures, partial)
        for folder in progress(folders, "reading patients"):
            pid = folder.name
            try:
                writer.add(pid, reader(folder), source=str(folder))
            except CervsegError as exc:
                writer.skip(pid, str(folder), " ".join(str(exc).split()))
        manifest = writer.finish(seed=seed, val_fraction=val_fraction, test_fraction=test_fraction,
                                 extra=extra or {})
    log.info("cache %s: %d patients (%d skipped); split train/val/test = %d/%d/%d", out,
             len(manifest["patients"]), len(manifest["skipped"]), len(manifest["splits"]["train"]),
             len(manifest["splits"]["val"]), len(manifest["splits"]["test"]))
    return manifest


class Cache:
    """Read side of the cache: memory-mapped arrays per patient, geometry, splits."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        path = self.folder / MANIFEST
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{self.folder}: not a training cache (no {MANIFEST}; make one with `cervseg dataset`)") from None
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: cannot read the cache manifest: {exc}") from None
        if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
            raise InputError(f"{path}: not a version-{VERSION} cervseg training cache")
        self.manifest: dict[str, Any] = manifest
        self.structures: list[str] = list(manifest["structures"])
        self._index = {s: i for i, s in enumerate(self.structures)}

    @property
    def patients(self) -> list[str]:
        return list(self.manifest["patients"])

    def split(self, name: str) -> list[str]:
        """Patient IDs of 'train', 'val' or 'test'."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}")
        return list(self.manifest["splits"][name])

    def entry(self, pid: str) -> dict[str, Any]:
        try:
            return self.manifest["patients"][pid]
        except KeyError:
            raise InputError(f"{self.folder}: no patient '{pid}' in the cache") from None

    def geometry(self, pid: str) -> Geometry:
        return geometry_from_dict(self.entry(pid)["geometry"])

    def labelled(self, pid: str) -> list[str]:
        """The structures contoured on this patient (caches before partial labels: all)."""
        return list(self.entry(pid).get("labelled", self.structures))

    def image(self, pid: str, mmap: bool = True) -> np.ndarray:
        """(z, y, x) int16 HU, memory-mapped unless mmap=False."""
        return np.load(self.folder / self.entry(pid)["image"], mmap_mode="r" if mmap else None)

    def packed_masks(self, pid: str, mmap: bool = True) -> np.ndarray:
        """(z, S, y, bytes) packed masks in the cache's structure order."""
        return np.load(self.folder / self.entry(pid)["masks"], mmap_mode="r" if mmap else None)

    def channels(self, names: Sequence[str] | None) -> list[int]:
        """Indices of structures in the cache's mask channels."""
        if names is None:
            return list(range(len(self.structures)))
        missing = [n for n in names if n not in self._index]
        if missing:
            raise InputError(f"{self.folder}: the cache has no structure {', '.join(missing)} "
                             f"(it has {', '.join(self.structures)})")
        return [self._index[n] for n in names]

    def mask_slices(self, pid: str, z: int | slice | np.ndarray, names: Sequence[str] | None = None) -> np.ndarray:
        """Masks of one or more slices: (S, y, x) for an int z, (n, S, y, x) otherwise."""
        width = self.geometry(pid).shape[2]
        packed = self.packed_masks(pid)[z]
        return unpack_masks(packed[..., self.channels(names), :, :], width)

    def masks(self, pid: str, names: Sequence[str] | None = None) -> np.ndarray:
        """All masks of a patient as (S, z, y, x) bool."""
        return np.moveaxis(self.mask_slices(pid, slice(None), names), 1, 0)

    def slices_with_structure(self, pid: str, names: Sequence[str] | None = None) -> np.ndarray:
        """(z,) bool: the slice holds any voxel of the named structures (read from packed bytes)."""
        packed = self.packed_masks(pid)[:, self.channels(names)]
        return np.asarray(packed).reshape(packed.shape[0], -1).any(axis=1)

    def volume(self, pid: str) -> Volume:
        e = self.entry(pid)
        series = SeriesInfo(series_instance_uid=e.get("series_instance_uid", ""),
                            patient_position=e.get("patient_position", "HFS"))
        return Volume(np.asarray(self.image(pid, mmap=False)), self.geometry(pid), series)

    def labelmap(self, pid: str, names: Sequence[str] | None = None) -> LabelMap:
        names = list(names) if names is not None else self.structures
        masks = self.masks(pid, names)
        return LabelMap(self.geometry(pid), {n: masks[i] for i, n in enumerate(names)})
