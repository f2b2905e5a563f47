"""The subcommand helpers: the command marker, and the collector paused for pipeline imports."""

from __future__ import annotations

import gc

import pytest

from cervseg.cli.app import command, pipeline_imports


def test_command_marks_name_and_options() -> None:
    @command("demo-x", help="Help text.")
    def func() -> None:
        """Unused."""

    assert func.cli_spec.name == "demo-x" and func.cli_spec.options == {"help": "Help text."}


def test_pipeline_imports_pause_the_collector_and_restore_its_state() -> None:
    assert gc.isenabled()
    with pipeline_imports():
        assert not gc.isenabled()
        import json  # noqa: F401  (any import)
    assert gc.isenabled()
    with pytest.raises(ModuleNotFoundError):
        with pipeline_imports():
            import cervseg_no_such_module  # noqa: F401
    assert gc.isenabled()
    gc.disable()
    try:
        with pipeline_imports():
            pass
        assert not gc.isenabled(), "a collector the caller had paused stays paused"
    finally:
        gc.enable()
