"""A self-contained HTML report: one file, PNG figures embedded as data URIs, no scripts.

Why self-contained: the report is mailed around and archived with a plan review; it must
open the same on a clinic PC without network access or the output folder beside it.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from cervseg.metrics.evaluate import GRADES, METRICS
from cervseg.report.tables import Table

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px auto;
       max-width: 1200px; color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 1.6em;
  border-bottom: 1px solid #ccc; padding-bottom: 2px; }
table { border-collapse: collapse; font-size: 0.85em; margin: 8px 0; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
td.best { font-weight: bold; background: #e4f4e4; }
.meta td { text-align: left; white-space: normal; }
.note { color: #555; font-size: 0.85em; }
img { max-width: 100%; border: 1px solid #ddd; margin: 6px 0; }
dl { font-size: 0.85em; } dt { font-weight: bold; } dd { margin: 0 0 6px 18px; }
"""


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@dataclass
class Report:
    """An HTML page built section by section; all text is escaped."""

    title: str
    parts: list[str] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str, note: bool = False) -> None:
        cls = ' class="note"' if note else ""
        self.parts.append(f"<p{cls}>{html.escape(text)}</p>")

    def key_values(self, items: Mapping[str, str]) -> None:
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in items.items())
        self.parts.append(f'<table class="meta">{rows}</table>')

    def table(self, table: Table, caption: str = "") -> None:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
        body = "".join(
            "<tr>" + "".join(
                f'<td class="best">{html.escape(c.text)}</td>' if c.best else f"<td>{html.escape(c.text)}</td>"
                for c in row
            ) + "</tr>"
            for row in table.rows
        )
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.parts.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def image(self, png: bytes, alt: str) -> None:
        self.parts.append(f'<img src="{data_uri(png)}" alt="{html.escape(alt)}">')

    def definitions(self, tolerance_mm: float) -> None:
        """The metric definitions and conventions, so that a reader need not look them up."""
        self.heading("Definitions")
        items = "".join(
            f"<dt>{html.escape(m.name)}{' (' + html.escape(m.unit) + ')' if m.unit else ''}</dt>"
            f"<dd>{html.escape(m.description)}</dd>"
            for m in METRICS.values()
        )
        self.parts.append(f"<dl>{items}</dl>")
        for text in (
            "Boundary: voxels of a mask with a face-neighbour outside it. Distances: from each boundary "
            "voxel centre to the nearest boundary voxel centre of the other mask, in mm with the voxel "
            "spacing. HD95 is the 95th percentile of both directed sets pooled; HD their maximum; MSD "
            f"their mean; surface Dice the fraction within {tolerance_mm:g} mm; APL counts reference "
            f"boundary pixels farther than {tolerance_mm:g} mm from the prediction, times the pixel size.",
            "Slices: a slice belongs to a structure when the reference or the prediction is on it. "
            "'paired' slices have both; 'missed' slices only the reference; 'false_positive' slices only "
            "the prediction. Slice averages (*_2d) are over paired slices; missed and false-positive "
            "slices are counted in their own columns, never dropped. Summaries of *_2d metrics pool the "
            "paired slices of all patients (as the papers do); other metrics are mean ± SD over patients.",
            "Review grades for slices.csv (column 'grade'): " + ", ".join(GRADES) + ".",
        ):
            self.paragraph(text, note=True)

    def render(self) -> str:
        body = "\n".join(self.parts)
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(self.title)}</title><style>{STYLE}</style></head>"
            f"<body><h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>\n"
        )


def images_section(report: Report, title: str, pngs: Sequence[tuple[str, bytes]]) -> None:
    """A heading and a list of captioned images."""
    report.heading(title)
    for caption, png in pngs:
        if caption:
            report.paragraph(caption, note=True)
        report.image(png, caption or title)
