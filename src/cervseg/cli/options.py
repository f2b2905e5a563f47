"""Option values shared by several subcommands, parsed into plain types with one clear error."""

from __future__ import annotations

from typing import Iterable

from cervseg.errors import InputError

ROI_HELP = "NAME=NUMBER: when several ROIs share a name, use the one with this ROINumber (repeatable)."


def parse_roi_numbers(values: Iterable[str]) -> dict[str, int]:
    """``--roi NAME=NUMBER`` items -> {ROI name: ROINumber}."""
    chosen: dict[str, int] = {}
    for item in values:
        name, sep, number = item.rpartition("=")
        name = name.strip()
        if not sep or not name or not number.strip().lstrip("-").isdigit():
            raise InputError(f"--roi '{item}': expected NAME=NUMBER (the ROINumber of the ROI to use)")
        if name in chosen:
            raise InputError(f"--roi: ROI name '{name}' given twice")
        chosen[name] = int(number)
    return chosen
