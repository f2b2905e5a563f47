"""`cervseg review-stats`: the papers' Table 2, inter-reviewer kappa and grades vs metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cervseg.cli.app import command

HELP = """Summarise a review database (from `cervseg review`) into DIR.

Writes table2.csv (per structure: count and percentage of Acceptable / Minor revision /
Major revision / Not acceptable, and the Mean Percentage row, laid out like Table 2 of the
papers), table2_long.csv (structure, grade, count, percent), kappa.csv (Cohen's weighted
kappa, linear and quadratic, for every pair of reviewers on the slices both graded),
grade_vs_metrics.csv with box plots grade_vs_dice.png / grade_vs_hd95.png / grade_vs_apl.png
(where a case had a reference RTSTRUCT) and review_time.csv (seconds per slice). Each
reviewer's latest grade counts; the database is only read.

Examples:

  cervseg review-stats --db review.sqlite --out review-stats

  cervseg review-stats --db review.sqlite --out stats-dr-rossi --reviewer "Dr Rossi"
"""


@command("review-stats", help=HELP)
def review_stats(
    db: Path = typer.Option(..., "--db", help="Review database written by `cervseg review`."),
    out: Path = typer.Option(..., "--out", help="Output folder (created)."),
    reviewer: Optional[str] = typer.Option(None, "--reviewer", help="Table 2 of this reviewer only (default: all)."),
) -> None:
    from cervseg.review.stats import write_review_stats
    from cervseg.review.store import open_existing

    write_review_stats(open_existing(db), out, reviewer=reviewer)
