"""cervseg: auto-contouring of planning CT for cervical-cancer radiotherapy."""

__version__ = "0.1.0"
