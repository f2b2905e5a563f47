"""The HTML report: self-contained, escaped, best cells marked, definitions present."""

from __future__ import annotations

import base64
import re

from cervseg.metrics.evaluate import GRADES
from cervseg.report.html import Report
from cervseg.report.tables import Cell, Table

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def test_report_is_self_contained_and_escaped():
    r = Report("eval <Bladder & Rectum>")
    r.key_values({"Reference": "/data/<patients>"})
    r.table(Table(["Structure", "DSC"], [[Cell("Bladder"), Cell("0.9 ± 0.1", best=True)], [Cell("Rectum"), Cell("0.7")]]))
    r.image(PNG, "box plots")
    r.definitions(2.0)
    page = r.render()
    assert "<Bladder" not in page and "&lt;Bladder &amp; Rectum&gt;" in page
    assert "/data/&lt;patients&gt;" in page
    srcs = re.findall(r'src="([^"]+)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert base64.b64decode(srcs[0].split(",", 1)[1]) == PNG
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")
    assert page.count('class="best"') == 1 and '<td class="best">0.9 ± 0.1</td>' in page
    for grade in GRADES:
        assert grade in page
    assert "2 mm" in page
