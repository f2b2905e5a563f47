"""When a series counts as complete: quiet for quiet_seconds after the association that sent it let go."""

from __future__ import annotations

import pytest

from cervseg.errors import ConfigError
from cervseg.node.scp import Activity
from tests.node.conftest import node_config


def test_a_series_is_never_quiet_while_its_association_is_open() -> None:
    activity = Activity(since=0.0)
    activity.touch(1, "1.2.3", now=10.0)
    assert activity.is_busy("1.2.3")
    assert not activity.is_quiet("1.2.3", last_received=10.0, now=1000.0, quiet_seconds=5)
    activity.close(1, now=20.0)  # released ten seconds after its last instance
    assert not activity.is_busy("1.2.3")
    assert not activity.is_quiet("1.2.3", last_received=10.0, now=24.9, quiet_seconds=5)
    assert activity.is_quiet("1.2.3", last_received=10.0, now=25.0, quiet_seconds=5)


def test_another_association_holding_the_series_keeps_it_open_and_a_restart_counts_as_activity() -> None:
    activity = Activity(since=0.0)
    activity.touch(1, "1.2.3", now=10.0)
    activity.touch(2, "1.2.3", now=11.0)
    activity.close(1, now=12.0)
    assert not activity.is_quiet("1.2.3", last_received=11.0, now=100.0, quiet_seconds=5)
    activity.close(2, now=13.0)
    assert activity.is_quiet("1.2.3", last_received=11.0, now=18.0, quiet_seconds=5)
    restarted = Activity(since=50.0)  # instances from before a restart wait quiet_seconds again
    assert not restarted.is_quiet("1.2.3", last_received=11.0, now=54.0, quiet_seconds=5)
    assert restarted.is_quiet("1.2.3", last_received=11.0, now=55.0, quiet_seconds=5)


def test_a_port_already_in_use_is_a_clear_start_up_error(start_node, predictor, tmp_path) -> None:
    from cervseg.node.server import Node

    cfg = node_config(tmp_path / "a")
    start_node(cfg)
    second = Node(node_config(tmp_path / "b", port=cfg.port), predictor=predictor)
    with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{cfg.port}"):
        second.start()
    second.stop()
