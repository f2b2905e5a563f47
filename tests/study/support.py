"""A tiny study for the study tests: tiny phantoms with a test split, and a study config writer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.tiny_data import PHANTOM_CROP, build_phantom_cache


def phantom_study_cache(out: Path) -> Path:
    """Six tiny phantoms: 3 train, 1 validation, 2 test patients."""
    return build_phantom_cache(out, n=6, val_fraction=0.2, test_fraction=0.34)


def study_config(folder: Path, name: str = "study.yaml", **over: Any) -> Path:
    """Two arms (ResAU-Net, U-Net) of paper 001's set-up x two seeds, slim and short."""
    cfg: dict[str, Any] = {
        "cache": "cache",
        "out_dir": "study",
        "seeds": [0, 1],
        "base": {
            "preprocess": {"intensity": "window", "spacing_mm": 5.6, "crop_mm": PHANTOM_CROP * 5.6},
            "augment": {"enabled": False},
            "batch_size": 8, "epochs": 2, "max_steps_per_epoch": 2, "threads": 1,
        },
        "profiles": {"p001": {"data": {"structures": ["Bladder", "Rectum"]}, "output_mode": "multiclass"}},
        "arms": [
            {"name": "resau", "profile": "p001", "model": {"name": "resau_net", "base_width": 4}, "loss": {"name": "lovasz"}},
            {"name": "unet", "profile": "p001", "model": {"name": "unet", "base_width": 4}, "loss": {"name": "lovasz"}},
        ],
        "claims": [{"id": "resau_beats_unet", "text": "ResAU-Net beats U-Net", "arm": "resau", "baselines": ["unet"]}],
        **over,
    }
    path = Path(folder) / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path
