"""Structure catalogue, templates and ROI-name matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from cervseg.errors import StructureError
from cervseg.structures import Catalogue, available_templates, load_template, match_names, normalise_name


def test_shipped_templates() -> None:
    assert {"cervix", "prostate"} <= set(available_templates())
    cervix = load_template("cervix")
    assert cervix.structures == (
        "Bladder", "Rectum", "Femur_Head_L", "Femur_Head_R", "BoneMarrow",
        "Bowel_Small", "SpinalCord", "CTV_N", "CTV_UV",
    )
    assert load_template("prostate").structures[-1] == "Prostate"


def test_catalogue_types_and_colours() -> None:
    cat = Catalogue.builtin()
    assert cat.get("CTV_N").roi_type == "CTV"
    assert cat.get("Bladder").roi_type == "ORGAN"
    assert len({s.colour for s in cat.structures.values()}) == len(cat.structures)


@pytest.mark.parametrize(
    "roi,canonical",
    [
        ("Vescica", "Bladder"), ("RETTO", "Rectum"), ("FemoreSinistro", "Femur_Head_L"),
        ("FemoreDestro", "Femur_Head_R"), ("Prostata", "Prostate"), ("femoral head l", "Femur_Head_L"),
        ("Femoral-Head-Right", "Femur_Head_R"), ("small bowel", "Bowel_Small"), ("Bladder_DL", None),
        ("FemoralHead (Left)", "Femur_Head_L"), ("Vescica.", "Bladder"), ("Hüftkopf_L", None),
    ],
)
def test_case_and_separator_insensitive_matching(roi: str, canonical: str | None) -> None:
    assert Catalogue.builtin().canonical(roi) == canonical
    assert normalise_name(" Femur_Head-L ") == "femurheadl"


def test_real_case_names_match_prostate_template() -> None:
    rois = ["Vescica", "Retto", "FemoreSinistro", "FemoreDestro", "Prostata", "Bladder_DL", "External"]
    m = match_names(rois, load_template("prostate"), Catalogue.builtin())
    assert m.matched == {
        "Bladder": "Vescica", "Rectum": "Retto", "Femur_Head_L": "FemoreSinistro",
        "Femur_Head_R": "FemoreDestro", "Prostate": "Prostata",
    }
    assert m.missing == []
    assert m.unmatched_rois == ["Bladder_DL", "External"]
    assert "Bladder_DL" in m.report()


def test_missing_and_duplicate_rois_reported() -> None:
    m = match_names(["Bladder", "Vescica", "Retto"], load_template("cervix"), Catalogue.builtin())
    assert m.matched["Bladder"] == "Bladder"
    assert m.duplicates == {"Bladder": ["Bladder", "Vescica"]}
    assert "SpinalCord" in m.missing and "Rectum" not in m.missing


def test_names_file_extends_synonyms(tmp_path: Path) -> None:
    names = tmp_path / "names.yaml"
    names.write_text("Bladder: [Harnblase]\nFemur_Head_L: Hueftkopf links\n")
    cat = Catalogue.builtin(names)
    assert cat.canonical("harnblase") == "Bladder"
    assert cat.canonical("Hueftkopf Links") == "Femur_Head_L"


@pytest.mark.parametrize(
    "text,problem",
    [
        ("Bladdr: [X]\n", "unknown structure 'Bladdr'"),
        ("- just a list\n", "must map a structure name"),
        ("Bladder: [Retto]\n", "claimed by both"),
        ("Bladder: {a: 1}\n", "must be a list"),
        ("Bladder: [unclosed\n", "not valid YAML at line 2, column 1"),
    ],
)
def test_bad_names_file_names_file_and_problem(tmp_path: Path, text: str, problem: str) -> None:
    names = tmp_path / "names.yaml"
    names.write_text(text)
    with pytest.raises(StructureError) as err:
        Catalogue.builtin(names)
    assert problem in str(err.value) and str(names) in str(err.value)


def test_missing_names_file_and_unknown_template(tmp_path: Path) -> None:
    with pytest.raises(StructureError, match="not found"):
        Catalogue.builtin(tmp_path / "nope.yaml")
    with pytest.raises(StructureError, match="unknown template 'liver'"):
        load_template("liver")


def test_user_template_file(tmp_path: Path) -> None:
    t = tmp_path / "mine.yaml"
    t.write_text("name: mine\nstructures: [vescica, Retto]\n")
    assert load_template(t).structures == ("Bladder", "Rectum")
    t.write_text("name: mine\nstructures: [Liver]\n")
    with pytest.raises(StructureError, match="unknown structure 'Liver'"):
        load_template(t)
