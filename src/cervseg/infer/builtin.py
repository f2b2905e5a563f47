"""Where the built-in default model lives inside the installed package.

Why in the package: `cervseg segment` must work on a fresh install with no download (the
clinic's node may have no internet). The model was trained on synthetic phantoms and two
public real CTs; its checkpoint metadata says exactly which, and clinical use needs a model
trained on local data.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from cervseg.errors import InputError

BUILTIN_NAME = "builtin"


def builtin_model_path() -> Path:
    """The folder of the shipped checkpoint; a clear error if this install lacks it."""
    path = Path(str(resources.files("cervseg").joinpath("weights", BUILTIN_NAME)))
    if not (path / "checkpoint.json").is_file():
        raise InputError(
            f"{path}: the built-in model is not installed; pass --model CHECKPOINT_DIR "
            "(train one with `cervseg train`) or run scripts/train_builtin_model.py"
        )
    return path
