"""Plain text tables for command output (job lists, batch summaries): aligned, last column free."""

from __future__ import annotations

from typing import Sequence


def plain_table(rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the last column (reasons, paths) is not padded."""
    if not rows:
        return ""
    n = len(rows[0])
    widths = [max(len(r[i]) for r in rows) for i in range(n - 1)]
    return "\n".join(("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1]).rstrip() for r in rows)
