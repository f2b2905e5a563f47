"""requirements.lock pins every dependency pyproject.toml declares, at one exact version each,
and the environment running the tests is that lock (so a green run means the locked set)."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")

REPO = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _locked() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep, f"requirements.lock: '{line}' is not an exact pin"
        assert name.lower().replace("_", "-") not in pins, f"requirements.lock: {name} pinned twice"
        pins[name.lower().replace("_", "-")] = version
    return pins


def test_every_declared_dependency_is_locked_exactly():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    locked = _locked()
    missing = sorted({_name(r) for r in declared} - set(locked) - {"torch"})
    assert not missing, f"declared in pyproject.toml but not in requirements.lock: {missing} (run scripts/lock.sh)"
    assert "torch" not in locked  # pinned by the install step (CPU build) before the lock


def test_the_running_environment_is_the_lock():
    wrong = []
    for name, version in _locked().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong.append(f"{name} not installed")
            continue
        if installed != version:
            wrong.append(f"{name} {installed} != locked {version}")
    assert not wrong, "; ".join(wrong)
