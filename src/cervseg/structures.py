"""The structure catalogue: canonical names, synonyms, colours, ROI types and templates.

Templates and synonyms are data (YAML shipped in ``cervseg/templates``), not code, so a
clinic adds its own language's ROI names with a names file instead of editing Python:

    Bladder: [Vescica, Blase]
    Femur_Head_L: [FemoreSinistro, "Femoral Head L"]

Matching is case-insensitive and ignores spaces and punctuation, so "Femoral Head L",
"femoral_head_l", "FEMORAL-HEAD-L" and "FemoralHead (L)" are the same name.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import yaml

from cervseg.errors import StructureError
from cervseg.volume import LabelMap

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Structure:
    """One canonical structure of the catalogue."""

    name: str
    roi_type: str  # DICOM RT ROI Interpreted Type: ORGAN, CTV, EXTERNAL, ...
    colour: tuple[int, int, int]
    synonyms: tuple[str, ...]
    code: tuple[str, str, str] | None = None  # (scheme, value, meaning) of the property type
    category: tuple[str, str, str] | None = None  # (scheme, value, meaning) of the category
    laterality: tuple[str, str, str] | None = None
    plausible_ml: tuple[float, float] | None = None  # adult volume range for the QA check


def normalise_name(name: str) -> str:
    """The key used to compare ROI names: lower case letters and digits only.

    Punctuation goes too, because planning systems export names like
    "FemoralHead (Left)" (RayStation) for what others call "Femoral Head Left".
    """
    return re.sub(r"[\W_]+", "", name.strip().lower())


def left_right_swap(names: Sequence[str]) -> list[int]:
    """Index order that exchanges every ``X_L`` / ``X_R`` pair of names; the others keep their place.

    Why one helper: a left-right mirrored patient's left is our right, both for a flipped
    training slice (data.augment) and for a mirrored test-time pass (infer.predictor).
    """
    index = {str(n): i for i, n in enumerate(names)}
    order = []
    for name in index:
        side = name[-2:]
        twin = name[:-2] + {"_L": "_R", "_R": "_L"}[side] if side in ("_L", "_R") else name
        order.append(index.get(twin, index[name]))
    return order


def _load_yaml_resource(filename: str) -> object:
    text = resources.files("cervseg.templates").joinpath(filename).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _load_yaml_file(path: Path, what: str) -> object:
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StructureError(f"{path}: {what} not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise StructureError(f"{path}: not valid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StructureError(f"{path}: cannot read {what}: {first}") from None


def _code(value: object) -> tuple[str, str, str] | None:
    """A (scheme, value, meaning) triple from the catalogue YAML, or None."""
    if value is None:
        return None
    scheme, code, meaning = (str(v) for v in value)  # type: ignore[union-attr]
    return scheme, code, meaning


@dataclass
class Catalogue:
    """All known structures and the synonym index used to match a clinic's ROI names."""

    structures: dict[str, Structure]
    _index: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {}
        for s in self.structures.values():
            for synonym in (s.name, *s.synonyms):
                self._add_synonym(s.name, synonym)

    def _add_synonym(self, canonical: str, synonym: str, source: str = "catalogue") -> None:
        key = normalise_name(synonym)
        owner = self._index.get(key)
        if owner is not None and owner != canonical:
            raise StructureError(
                f"{source}: synonym '{synonym}' is claimed by both '{owner}' and '{canonical}'"
            )
        self._index[key] = canonical

    @classmethod
    def builtin(cls, names_file: Path | None = None) -> "Catalogue":
        """The shipped catalogue, extended by a user's names file when given."""
        raw = _load_yaml_resource("catalogue.yaml")
        structures = {
            name: Structure(
                name=name,
                roi_type=str(entry["type"]),
                colour=tuple(int(c) for c in entry["colour"]),
                synonyms=tuple(str(s) for s in entry.get("synonyms", [])),
                code=_code(entry.get("code")),
                category=_code(entry.get("category")),
                laterality=_code(entry.get("laterality")),
                plausible_ml=tuple(float(v) for v in entry["plausible_ml"]) if "plausible_ml" in entry else None,
            )
            for name, entry in raw.items()
        }
        catalogue = cls(structures)
        if names_file is not None:
            catalogue.extend_from_file(Path(names_file))
        return catalogue

    def extend_from_file(self, path: Path) -> None:
        """Add synonyms from a YAML names file mapping canonical name -> [synonyms]."""
        raw = _load_yaml_file(path, "names file")
        if not isinstance(raw, dict):
            raise StructureError(f"{path}: names file must map a structure name to a list of synonyms")
        for canonical, synonyms in raw.items():
            canonical = str(canonical)
            if canonical not in self.structures:
                known = ", ".join(self.structures)
                raise StructureError(f"{path}: unknown structure '{canonical}' (known: {known})")
            if isinstance(synonyms, str):
                synonyms = [synonyms]
            if not isinstance(synonyms, list):
                raise StructureError(f"{path}: synonyms of '{canonical}' must be a list")
            for synonym in synonyms:
                self._add_synonym(canonical, str(synonym), source=str(path))

    def canonical(self, roi_name: str) -> str | None:
        """The canonical name an ROI name stands for, or None when nothing matches."""
        return self._index.get(normalise_name(roi_name))

    def get(self, name: str) -> Structure:
        canonical = self.canonical(name)
        if canonical is None:
            raise StructureError(f"unknown structure '{name}'")
        return self.structures[canonical]


@dataclass(frozen=True)
class Template:
    """An ordered list of canonical structures a model segments (e.g. ``cervix``)."""

    name: str
    structures: tuple[str, ...]
    postprocess: dict[str, dict] = field(default_factory=dict)  # canonical name -> rule settings


def available_templates() -> list[str]:
    """Names of the templates shipped with the package."""
    folder = resources.files("cervseg.templates")
    return sorted(
        p.name[: -len(".yaml")]
        for p in folder.iterdir()
        if p.name.endswith(".yaml") and p.name != "catalogue.yaml"
    )


def load_template(name_or_path: str | Path, catalogue: Catalogue | None = None) -> Template:
    """A shipped template by name, or a user's YAML file by path."""
    catalogue = catalogue or Catalogue.builtin()
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        raw = _load_yaml_file(path, "template")
        where = str(path)
    elif str(name_or_path) in available_templates():
        raw = _load_yaml_resource(f"{name_or_path}.yaml")
        where = f"template '{name_or_path}'"
    else:
        known = ", ".join(available_templates())
        raise StructureError(f"unknown template '{name_or_path}' (shipped: {known}; or give a .yaml path)")
    if not isinstance(raw, dict) or not isinstance(raw.get("structures"), list):
        raise StructureError(f"{where}: a template needs a 'structures' list")
    names = []
    for entry in raw["structures"]:
        canonical = catalogue.canonical(str(entry))
        if canonical is None:
            raise StructureError(f"{where}: unknown structure '{entry}'")
        names.append(canonical)
    post_raw = raw.get("postprocess") or {}
    if not isinstance(post_raw, dict):
        raise StructureError(f"{where}: 'postprocess' must map a structure name to its settings")
    postprocess: dict[str, dict] = {}
    for entry, settings in post_raw.items():
        canonical = catalogue.canonical(str(entry))
        if canonical not in names:
            raise StructureError(f"{where}: postprocess names '{entry}', which is not in the template")
        if not isinstance(settings, dict):
            raise StructureError(f"{where}: postprocess settings of '{entry}' must be a mapping")
        settings = dict(settings)
        if "not_below" in settings:
            below = settings["not_below"]
            below = [below] if isinstance(below, str) else list(below or [])
            limits = [catalogue.canonical(str(b)) for b in below]
            if not limits or any(b not in names or b == canonical for b in limits):
                raise StructureError(f"{where}: postprocess not_below of '{entry}' must name other "
                                     f"structures of the template, got {below}")
            settings["not_below"] = limits
        postprocess[canonical] = settings
    return Template(name=str(raw.get("name", path.stem)), structures=tuple(names), postprocess=postprocess)


@dataclass
class NameMatch:
    """Result of matching a clinic's ROI names against a template."""

    matched: dict[str, str]  # canonical name -> ROI name as found in the file
    unmatched_rois: list[str]  # ROIs in the file that matched no template structure
    missing: list[str]  # template structures with no ROI in the file
    duplicates: dict[str, list[str]]  # canonical name -> several ROI names claiming it

    def report(self) -> str:
        """Multi-line summary for logs and `convert` output."""
        lines = [f"matched: {self.matched.get(c)} -> {c}" for c in self.matched]
        if self.missing:
            lines.append("missing from the file: " + ", ".join(self.missing))
        if self.unmatched_rois:
            lines.append("ROIs that matched no template structure: " + ", ".join(self.unmatched_rois))
        for canonical, rois in self.duplicates.items():
            lines.append(f"several ROIs match {canonical}: {', '.join(rois)} (used {rois[0]})")
        return "\n".join(lines)


def match_names(roi_names: Iterable[str], template: Template, catalogue: Catalogue) -> NameMatch:
    """Map ROI names of a file to the template's canonical structures.

    When several ROIs match one structure, the first one keeps it and the clash is reported.
    """
    matched: dict[str, str] = {}
    duplicates: dict[str, list[str]] = {}
    unmatched: list[str] = []
    wanted = set(template.structures)
    for roi in roi_names:
        canonical = catalogue.canonical(roi)
        if canonical is None or canonical not in wanted:
            unmatched.append(roi)
            continue
        if canonical in matched:
            duplicates.setdefault(canonical, [matched[canonical]]).append(roi)
            continue
        matched[canonical] = roi
    missing = [s for s in template.structures if s not in matched]
    ordered = {s: matched[s] for s in template.structures if s in matched}
    return NameMatch(ordered, unmatched, missing, duplicates)


def colours(names: Iterable[str], catalogue: Catalogue) -> Mapping[str, tuple[int, int, int]]:
    """Display colour per canonical name (grey for names outside the catalogue)."""
    out = {}
    for n in names:
        c = catalogue.canonical(n)
        out[n] = catalogue.structures[c].colour if c else (128, 128, 128)
    return out


def rename_to_catalogue(raw: LabelMap, catalogue: Catalogue) -> LabelMap:
    """Masks renamed to the catalogue's canonical names (Vescica -> Bladder); unknown names
    stay as they are. Two masks that are the same structure are refused, naming both."""
    labels = LabelMap(raw.geometry)
    source: dict[str, str] = {}
    for stem in raw:
        name = catalogue.canonical(stem)
        if name is None:
            name = stem  # the RTSTRUCT writer warns that it is not in the catalogue
        elif name != stem:
            log.info("mask '%s' -> %s", stem, name)
        if name in source:
            raise StructureError(f"masks '{source[name]}' and '{stem}' are both {name}: keep one of them")
        source[name] = stem
        labels[name] = raw[stem]
    return labels
