"""Error classes. The CLI maps every CervsegError to exit code 2 and one clear line.

Why a hierarchy: callers (tests, the CLI, a clinic's integration code) can tell bad input
from a bug without parsing messages.
"""

from __future__ import annotations


class CervsegError(Exception):
    """Base class: a problem with what the user gave us (exit code 2)."""

    exit_code = 2


class InputError(CervsegError):
    """A file or folder the user named is missing, unreadable or of the wrong kind."""


class GeometryError(CervsegError):
    """A CT series or mask grid that cervseg refuses (oblique, tilted, gaps, mismatch)."""


class SeriesSelectionError(CervsegError):
    """The input holds no CT series, or several and the user did not choose one."""


class StructureError(CervsegError):
    """A structure name, template or names file is wrong, or a required ROI is missing."""


class ConfigError(CervsegError):
    """A YAML config fails validation."""
