"""DICOM Decimal String (DS) values: the one formatter every cervseg DICOM writer uses.

Why one: a DS value may hold at most 16 bytes, and some planning systems (Eclipse) reject a
file rather than read a longer one. The CT series writer and the RTSTRUCT writer format
their numbers here, so both follow the same rule and keep the same precision.
"""

from __future__ import annotations

import math

DS_MAX_BYTES = 16


def format_ds(value: float) -> str:
    """The most precise decimal string of ``value`` that fits DICOM DS (<= 16 bytes).

    A float's shortest repr is often 17+ characters (-123.456789012345, 0.30000000000000004).
    Tries the shortest round-trip form first, then fewer significant digits; Python's 'g'
    format switches to an exponent when that is shorter, which DS allows (1e-07). Why not
    pydicom's format_number_as_ds: it writes "-0.0", padding zeros ("0.30000000000000") and
    fewer digits for large exponents ("1.2345678901e+17" where "1.23456789012e17" fits).
    """
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"DS cannot hold {value}")
    if value == 0.0:
        return "0"
    text = _tidy(repr(value))
    if len(text) <= DS_MAX_BYTES:
        return text
    for digits in range(16, 0, -1):
        text = _tidy(f"{value:.{digits}g}")
        if len(text) <= DS_MAX_BYTES:
            return text
    raise ValueError(f"cannot format {value} in {DS_MAX_BYTES} bytes")  # pragma: no cover


def _tidy(text: str) -> str:
    """Drop a trailing '.0' and a needless '+'/leading zero in the exponent ('1e+20' -> '1e20')."""
    if "e" in text:
        mantissa, exponent = text.split("e")
        sign = "-" if exponent.startswith("-") else ""
        return f"{mantissa}e{sign}{int(exponent.lstrip('+-'))}"
    if text.endswith(".0"):
        text = text[:-2]
    return "0" if text == "-0" else text
