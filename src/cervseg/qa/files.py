"""The QA file beside the RTSTRUCT: QA_<SeriesInstanceUID>.csv, one row per slice and structure.

Why CSV: a physicist opens it in a spreadsheet; the review page reads it to order slices
worst-first. Columns: QA_COLUMNS (score in [0, 1], higher = more likely wrong).
"""

from __future__ import annotations

import csv
from dataclasses import astuple
from pathlib import Path
from typing import Iterable

from cervseg.qa.scores import QA_COLUMNS, SliceQA


def qa_file_name(series_uid: str) -> str:
    return f"QA_{series_uid}.csv"


def write_qa_csv(rows: Iterable[SliceQA], path: Path) -> None:
    """Write the rows (the caller stages the file; see infer/segment.py)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(QA_COLUMNS)
        writer.writerows(astuple(r) for r in rows)
