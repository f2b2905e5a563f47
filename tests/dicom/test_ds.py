"""The DS formatter every DICOM writer uses: at most 16 bytes, as precise as that allows."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom import config as dicom_config
from pydicom.valuerep import DSfloat

from cervseg.dicom.ds import format_ds


@pytest.mark.parametrize(
    "value,expected",
    [(-123.456789012345, -123.45678901234), (1e-7, 1e-7), (99999999.99, 99999999.99),
     (0.1 + 0.2, 0.3), (-0.0, 0.0), (1.2345678901234567e17, 1.23456789012e17),
     (-9.87654321e-300, -9.87654321e-300), (250.0, 250.0)],
)
def test_format_ds_awkward_values(value: float, expected: float) -> None:
    text = format_ds(value)
    assert len(text) <= 16
    assert float(text) == pytest.approx(expected, rel=1e-12, abs=0)
    # pydicom's own DS validation (an independent reading of the VR rules) accepts it
    DSfloat(text, validation_mode=dicom_config.RAISE)


def test_format_ds_keeps_precision_on_random_values() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(0, 1, 2000) * 10.0 ** rng.integers(-12, 12, 2000)
    for v in values:
        text = format_ds(v)
        assert len(text) <= 16
        assert float(text) == pytest.approx(v, rel=1e-10)


def test_format_ds_refuses_non_finite() -> None:
    with pytest.raises(ValueError):
        format_ds(float("nan"))
