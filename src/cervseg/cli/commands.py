"""The list of subcommands. Each module defines its command on `cervseg.cli.main.app`.

One import per line, so that adding a command is a one-line change.
"""
# ruff: noqa: F401
from cervseg.cli import convert_cmd
from cervseg.cli import to_rtstruct_cmd
from cervseg.cli import demo_cmd
from cervseg.cli import dataset_cmd
from cervseg.cli import train_cmd
from cervseg.cli import segment_cmd
from cervseg.cli import evaluate_cmd
from cervseg.cli import compare_cmd
from cervseg.cli import phantom_cmd
