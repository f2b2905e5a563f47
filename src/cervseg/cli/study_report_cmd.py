"""`cervseg study-report`: the papers' tables, paired tests and claim verdicts of a study folder."""

from __future__ import annotations

from pathlib import Path

import typer

from cervseg.cli.app import command

HELP = (
    "Read the scored runs of a `cervseg study` folder and write OUT/report.md with the papers' "
    "tables (DSC and HD95 per structure, 2D per slice pooled as the papers average and 3D per "
    "patient, mean ± SD over seeds, best per structure marked), a paired Wilcoxon signed-rank "
    "test of each claim's arm against each baseline over patients x seeds (median difference, "
    "rank-biserial r, raw p; no multiple-comparison correction, the number of tests stated), "
    "box plots and a verdict per claim: holds / does not hold / not resolved at this sample size.\n\n"
    "Also tables.csv, table_<metric>.csv, tests.csv, verdicts.csv and box_<claim>.png. Runs "
    "without scores yet are listed as missing."
)
EXAMPLE = """\
Examples:

  cervseg study-report --study study/phantom --out study/phantom-report

  cervseg study-report --study study/phantom/quick --out quick-report
"""


@command("study-report", help=HELP, epilog=EXAMPLE)
def study_report(
    study: Path = typer.Option(..., "--study", help="Study folder (the config's out_dir, with study.yaml)."),
    out: Path = typer.Option(..., "--out", help="Report folder (created, or replaced as a whole if it is an earlier report)."),
) -> None:
    """Write a study's report (see HELP)."""
    from cervseg.study.report import write_study_report

    write_study_report(study, out)
