"""The base of hildif's own errors.

:class:`HildifError` marks a failure the user can act on: bad input (a config value, a data file, a Label Studio
payload), a missing resource (Label Studio, a model version, WordNet) or a refused operation. Its message names what
is at fault and what to do. The ``hildif`` command prints it on one line and exits with code 1; any other exception
that escapes a command is a bug and surfaces with its traceback.

Each error class derives from :class:`HildifError` and from the built-in exception it refines (``ValueError``,
``RuntimeError``, ``FileNotFoundError``), so callers that catch the built-in one keep working.
"""

from __future__ import annotations


class HildifError(Exception):
    """A failure hildif reports to the user (see the module docstring); never raised bare."""


__all__ = ["HildifError"]
