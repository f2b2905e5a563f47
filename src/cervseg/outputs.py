"""Write outputs atomically: to a temporary name beside the target, then rename.

Why: a run that fails half-way must leave no half-written file or folder that a planning
system or a later step could mistake for a result.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _default_permissions(path: Path, is_dir: bool) -> None:
    """mkstemp/mkdtemp create owner-only entries; a planning-system import account must read ours."""
    os.chmod(path, (0o777 if is_dir else 0o666) & ~_umask())


@contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename onto target only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _default_permissions(tmp_path, is_dir=False)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary folder beside target; on success it replaces target as a whole.

    An existing target folder is only replaced once the new content is complete.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        yield tmp_path
        _default_permissions(tmp_path, is_dir=True)
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(target, old)
            os.replace(tmp_path, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            shutil.rmtree(tmp_path)


def ensure_not_inside(output: Path, protected: Path, what: str = "input folder") -> None:
    """Refuse to write an output inside a folder the user gave us as input."""
    from cervseg.errors import InputError

    out = Path(output).resolve()
    prot = Path(protected).resolve()
    if out == prot or prot in out.parents:
        raise InputError(f"{output}: output must not be inside the {what} {protected}")
