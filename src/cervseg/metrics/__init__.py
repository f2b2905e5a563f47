"""cervseg.metrics: overlap and surface measures, per case and per slice.

The default surface tolerance lives here, not in surface.py, so that the command line can
show it in `--help` without importing the metrics (and MONAI) themselves.
"""

#: Surface tolerance in mm for surface Dice and added path length (docs/evaluation.md).
DEFAULT_TOLERANCE_MM = 2.0
