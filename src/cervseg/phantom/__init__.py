"""Synthetic pelvic CT patients with the nine `cervix` structures contoured (see docs/phantom.md).

``generate_patient(seed, preset) -> (Volume, LabelMap)`` makes one patient in memory;
``cervseg.phantom.cohort.write_cohort`` writes DICOM CT series + RTSTRUCT folders.
"""

from cervseg.phantom.generator import generate_patient

__all__ = ["generate_patient"]
