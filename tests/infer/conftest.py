"""Fixtures for inference tests: a tiny untrained-but-deterministic checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cervseg.config import PreprocessConfig
from cervseg.models.checkpoint import save_checkpoint
from cervseg.models.registry import create_model

STRUCTURES = ["Bladder", "Femur_Head_L", "Femur_Head_R"]


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    preprocessing = PreprocessConfig(intensity="window", crop_size=32, context_slices=1)
    model = create_model("unet", preprocessing.in_channels, len(STRUCTURES), base_width=4).eval()
    # make the output depend on intensity so that thresholds are crossed in places
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    out = tmp_path_factory.mktemp("ckpt") / "model"
    save_checkpoint(
        out, model, model_name="unet",
        model_config={"in_channels": preprocessing.in_channels, "out_channels": len(STRUCTURES), "base_width": 4},
        structures=STRUCTURES, output_mode="multilabel",
        preprocess=preprocessing.model_dump(), training_summary={"description": "unit test"},
    )
    return out


