"""Output modes: channel lists, target encoding, decoding, overlap priority, femoral split by patient x."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cervseg.errors import StructureError
from cervseg.models.output_modes import (
    OutputSpec,
    channels_for,
    decode,
    encode_targets,
    split_femoral_heads,
    to_probabilities,
)
from cervseg.volume import Geometry

CERVIX = ["Bladder", "Rectum", "Femur_Head_L", "Femur_Head_R", "BoneMarrow", "Bowel_Small", "SpinalCord"]

# DICOM orientations (ImageOrientationPatient row, column) -> Geometry axes (normal, column dir, row dir)
ORIENTATIONS = {
    "HFS": ((1, 0, 0), (0, 1, 0)),
    "FFS": ((-1, 0, 0), (0, 1, 0)),
    "HFP": ((-1, 0, 0), (0, -1, 0)),
    "FFP": ((1, 0, 0), (0, -1, 0)),
}


def geometry(position: str, shape=(6, 40, 64), spacing=(5.0, 4.0, 4.0), origin=(-128.0, -80.0, 0.0)) -> Geometry:
    row, col = (np.asarray(v, dtype=float) for v in ORIENTATIONS[position])
    normal = np.cross(row, col)
    return Geometry(shape, spacing, origin, (tuple(normal), tuple(col), tuple(row)))


def blob(shape, rows, cols, slices=slice(1, 5)) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[slices, rows, cols] = True
    return m


def logits_from(target: torch.Tensor, mode: str, n_channels: int) -> torch.Tensor:
    """Confident logits that decode to the given target."""
    if mode == "multilabel":
        return (target * 2 - 1) * 8.0
    onehot = torch.nn.functional.one_hot(target, n_channels).movedim(-1, -3).float()
    return (onehot * 2 - 1) * 8.0


def test_channels_for_both_modes_and_merged_heads():
    assert channels_for(CERVIX, "multilabel") == CERVIX
    merged = channels_for(CERVIX, "multilabel", merge_femoral_heads=True)
    assert merged == ["Bladder", "Rectum", "Femur_Head", "BoneMarrow", "Bowel_Small", "SpinalCord"]
    assert len(merged) == 6  # paper 000: seven OARs, six channels
    assert channels_for(["Bladder", "Rectum", "CTV_N", "CTV_UV"], "multiclass") == [
        "background", "Bladder", "Rectum", "CTV_N", "CTV_UV"
    ]


@pytest.mark.parametrize(
    "structures,merge,match",
    [
        (["Bladder", "Bladder"], False, "duplicates"),
        (["background", "Bladder"], False, "reserved"),
        (["Bladder", "Femur_Head_L"], True, "needs both"),
    ],
)
def test_bad_structure_lists(structures, merge, match):
    with pytest.raises(StructureError, match=match):
        channels_for(structures, "multilabel", merge)


def test_unknown_mode():
    with pytest.raises(ValueError, match="multilabel, multiclass"):
        channels_for(CERVIX, "softmax")


def test_multilabel_round_trip_keeps_overlaps():
    rng = np.random.default_rng(0)
    shape = (3, 16, 16)
    masks = {name: rng.random(shape) > 0.6 for name in CERVIX}
    target = encode_targets(masks, CERVIX, "multilabel")
    assert target.dtype == torch.float32 and target.shape == (len(CERVIX), *shape)
    # decode expects (N, C, H, W): the 3 slices are the batch
    decoded = decode(logits_from(target, "multilabel", 0).movedim(0, 1), CERVIX, "multilabel")
    assert list(decoded) == CERVIX
    for name in CERVIX:
        np.testing.assert_array_equal(decoded[name], masks[name])


def test_multilabel_stacked_array_input_equals_dict_input():
    rng = np.random.default_rng(1)
    stack = rng.random((len(CERVIX), 8, 8)) > 0.5
    from_dict = encode_targets(dict(zip(CERVIX, stack)), CERVIX, "multilabel")
    assert torch.equal(encode_targets(stack, CERVIX, "multilabel"), from_dict)


def test_multiclass_round_trip_for_disjoint_structures():
    structures = ["Bladder", "Rectum", "CTV_N", "CTV_UV"]
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 5, size=(4, 12, 10))
    masks = {name: labels == i + 1 for i, name in enumerate(structures)}
    target = encode_targets(masks, structures, "multiclass")
    assert target.dtype == torch.int64
    np.testing.assert_array_equal(target.numpy(), labels)
    decoded = decode(logits_from(target, "multiclass", 5), structures, "multiclass")
    assert list(decoded) == structures
    for name in structures:
        np.testing.assert_array_equal(decoded[name], masks[name])


def test_multiclass_overlap_goes_to_the_priority_structure():
    structures = ["Bladder", "CTV_UV"]
    bladder = np.zeros((1, 6, 6), bool)
    ctv = np.zeros((1, 6, 6), bool)
    bladder[0, 1:4, 1:4] = True
    ctv[0, 2:5, 2:5] = True  # overlaps the bladder on [2:4, 2:4]
    masks = {"Bladder": bladder, "CTV_UV": ctv}
    default = encode_targets(masks, structures, "multiclass").numpy()
    assert (default[0, 2:4, 2:4] == 1).all()  # default priority: structure order, Bladder first
    flipped = encode_targets(masks, structures, "multiclass", priority=["CTV_UV"]).numpy()
    assert (flipped[0, 2:4, 2:4] == 2).all()
    # outside the overlap both encodings agree with the masks
    only_bladder, only_ctv = bladder & ~ctv, ctv & ~bladder
    for enc in (default, flipped):
        assert (enc[only_bladder] == 1).all() and (enc[only_ctv] == 2).all() and (enc[~(bladder | ctv)] == 0).all()


def test_priority_errors():
    masks = {"Bladder": np.zeros((2, 2), bool)}
    with pytest.raises(StructureError, match="Rectum"):
        encode_targets(masks, ["Bladder"], "multiclass", priority=["Rectum"])
    with pytest.raises(ValueError, match="multiclass"):
        encode_targets(masks, ["Bladder"], "multilabel", priority=["Bladder"])


def test_missing_mask_is_a_structure_error():
    with pytest.raises(StructureError, match="Rectum"):
        encode_targets({"Bladder": np.zeros((2, 2), bool)}, ["Bladder", "Rectum"], "multilabel")


def test_merged_heads_encode_as_their_union():
    g = geometry("HFS")
    left = blob(g.shape, slice(10, 20), slice(40, 50))
    right = blob(g.shape, slice(10, 20), slice(10, 20))
    masks = {"Bladder": np.zeros(g.shape, bool), "Femur_Head_L": left, "Femur_Head_R": right}
    structures = ["Bladder", "Femur_Head_L", "Femur_Head_R"]
    target = encode_targets(masks, structures, "multilabel", merge_femoral_heads=True)
    assert target.shape == (2, *g.shape)
    np.testing.assert_array_equal(target[1].numpy().astype(bool), left | right)
    multiclass = encode_targets(masks, structures, "multiclass", merge_femoral_heads=True).numpy()
    assert set(np.unique(multiclass[left | right])) == {2}


@pytest.mark.parametrize("mode", ["multilabel", "multiclass"])
@pytest.mark.parametrize("position", sorted(ORIENTATIONS))
def test_merged_heads_decode_back_to_the_right_sides(mode, position):
    """Encode L/R -> one channel -> logits -> decode with geometry: sides come back, any orientation."""
    g = geometry(position)
    structures = ["Bladder", "Femur_Head_L", "Femur_Head_R"]
    # put the true left head where patient x is large, whatever the orientation
    xs = g.index_to_lps(np.array([[0, 0, c] for c in range(g.shape[2])], dtype=float))[:, 0]
    left_cols = np.argsort(xs)[-14:-4]
    right_cols = np.argsort(xs)[4:14]
    left = np.zeros(g.shape, bool)
    right = np.zeros(g.shape, bool)
    left[1:5, 10:20, np.sort(left_cols)] = True
    right[1:5, 10:20, np.sort(right_cols)] = True
    bladder = blob(g.shape, slice(25, 35), slice(28, 36))
    masks = {"Bladder": bladder, "Femur_Head_L": left, "Femur_Head_R": right}
    spec = OutputSpec(tuple(structures), mode, merge_femoral_heads=True)
    target = spec.encode(masks)
    n = len(spec.channels)
    logits = logits_from(target, mode, n)
    if mode == "multilabel":
        logits = logits.movedim(0, 1)  # (C, Z, Y, X) -> (Z, C, Y, X): slices are the batch
    decoded = spec.decode(logits, geometry=g)
    assert list(decoded) == structures
    np.testing.assert_array_equal(decoded["Femur_Head_L"], left)
    np.testing.assert_array_equal(decoded["Femur_Head_R"], right)
    np.testing.assert_array_equal(decoded["Bladder"], bladder)


def test_split_uses_patient_x_not_array_columns():
    shape = (6, 40, 64)
    low_cols = blob(shape, slice(10, 20), slice(5, 15))
    high_cols = blob(shape, slice(10, 20), slice(45, 55))
    merged = low_cols | high_cols
    hfs = split_femoral_heads(merged, geometry("HFS", shape))  # columns run to patient left
    np.testing.assert_array_equal(hfs["Femur_Head_L"], high_cols)
    np.testing.assert_array_equal(hfs["Femur_Head_R"], low_cols)
    ffs = split_femoral_heads(merged, geometry("FFS", shape))  # columns run to patient right
    np.testing.assert_array_equal(ffs["Femur_Head_L"], low_cols)
    np.testing.assert_array_equal(ffs["Femur_Head_R"], high_cols)


def test_split_of_an_off_centre_patient_uses_the_heads_midpoint():
    shape = (6, 40, 64)
    g = geometry("HFS", shape)  # grid centre at column 31.5; both heads lie left of it in the array
    right = blob(shape, slice(10, 20), slice(1, 9))
    left = blob(shape, slice(10, 20), slice(26, 31))  # centroids 25 columns = 100 mm apart
    out = split_femoral_heads(left | right, g)
    np.testing.assert_array_equal(out["Femur_Head_L"], left)
    np.testing.assert_array_equal(out["Femur_Head_R"], right)


def test_split_with_one_head_uses_the_grid_centre():
    shape = (6, 40, 64)
    only = blob(shape, slice(10, 20), slice(45, 55))  # high columns
    hfs = split_femoral_heads(only, geometry("HFS", shape))
    assert hfs["Femur_Head_L"].sum() == only.sum() and not hfs["Femur_Head_R"].any()
    ffs = split_femoral_heads(only, geometry("FFS", shape))
    assert ffs["Femur_Head_R"].sum() == only.sum() and not ffs["Femur_Head_L"].any()


def test_small_islands_follow_their_own_side():
    shape = (6, 40, 64)
    g = geometry("HFS", shape)
    right = blob(shape, slice(10, 20), slice(5, 15))
    left = blob(shape, slice(10, 20), slice(45, 55))
    island = np.zeros(shape, bool)
    island[2, 30, 60] = True  # a false positive on the patient's left
    out = split_femoral_heads(right | left | island, g)
    np.testing.assert_array_equal(out["Femur_Head_L"], left | island)
    np.testing.assert_array_equal(out["Femur_Head_R"], right)


def test_explicit_midline_and_empty_mask():
    shape = (6, 40, 64)
    g = geometry("HFS", shape)
    head = blob(shape, slice(10, 20), slice(20, 25))  # centroid column 22: x = -128 + 22 * 4 = -40 mm
    assert split_femoral_heads(head, g, midline_x=-30.0)["Femur_Head_R"].sum() == head.sum()
    assert split_femoral_heads(head, g, midline_x=-50.0)["Femur_Head_L"].sum() == head.sum()
    empty = split_femoral_heads(np.zeros(shape, bool), g)
    assert not empty["Femur_Head_L"].any() and not empty["Femur_Head_R"].any()
    with pytest.raises(ValueError, match="shape"):
        split_femoral_heads(np.zeros((1, 2, 3), bool), g)


def test_decode_threshold_probabilities_and_shapes():
    probs = torch.tensor([[[[0.2, 0.6]]], [[[0.7, 0.4]]]]).movedim(0, 1)  # (N=1, C=2, 1, 2)
    out = decode(probs, ["A", "B"], "multilabel", probabilities=True)
    np.testing.assert_array_equal(out["A"], [[[False, True]]])
    np.testing.assert_array_equal(out["B"], [[[True, False]]])
    strict = decode(probs, ["A", "B"], "multilabel", probabilities=True, threshold=0.65)
    assert strict["A"].sum() == 0 and strict["B"].sum() == 1
    single = decode(probs[0], ["A", "B"], "multilabel", probabilities=True)  # (C, H, W)
    assert single["A"].shape == (1, 2)
    with pytest.raises(ValueError, match="channels"):
        decode(probs, ["A", "B", "C"], "multilabel")
    with pytest.raises(ValueError, match="shape"):
        decode(torch.zeros(2, 2), ["A", "B"], "multilabel")


def test_decode_without_geometry_keeps_the_merged_channel():
    logits = torch.full((1, 2, 4, 4), -5.0)
    out = decode(logits, ["Femur_Head_L", "Femur_Head_R", "Bladder"], "multilabel", merge_femoral_heads=True)
    assert list(out) == ["Femur_Head", "Bladder"]


def test_probabilities_match_the_mode():
    logits = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(to_probabilities(logits, "multiclass").sum(dim=1), torch.ones(2, 4, 4))
    torch.testing.assert_close(to_probabilities(logits, "multilabel"), torch.sigmoid(logits))


def test_output_spec_dict_round_trip():
    spec = OutputSpec(("Bladder", "CTV_UV", "Femur_Head_L", "Femur_Head_R"), "multiclass", True, ("CTV_UV",))
    data = spec.to_dict()
    assert data["channels"] == ["background", "Bladder", "CTV_UV", "Femur_Head"]
    assert OutputSpec.from_dict(data) == spec


def test_labelled_channels_merged_head_needs_both_heads():
    spec = OutputSpec(("Bladder", "Femur_Head_L", "Femur_Head_R", "Rectum"), "multilabel", merge_femoral_heads=True)
    labelled = torch.tensor([[True, True, True, False], [False, True, False, True]])
    assert spec.channels == ["Bladder", "Femur_Head", "Rectum"]
    assert spec.labelled_channels(labelled).tolist() == [[True, True, False], [False, False, True]]
    with pytest.raises(ValueError, match="multilabel"):
        OutputSpec(("Bladder",), "multiclass").labelled_channels(labelled[:, :1])
