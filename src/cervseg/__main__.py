"""`python -m cervseg` runs the command line."""

from cervseg.cli.main import run

run()
