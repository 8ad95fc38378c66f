"""Exceptions that tell the user what went wrong and how to fix it.

Every message names the thing at fault (a folder, a file, an argument), what was wrong with it and
what to do. The ComfyUI nodes prefix the node name; the CLI prints the message as is.
"""

from __future__ import annotations


class Show1Error(Exception):
    """Base class of every error raised on purpose by show1_core."""


class ModelLoadError(Show1Error):
    """A stage folder or weight file cannot be used."""


class InputError(Show1Error, ValueError):
    """An argument a stage cannot take; the message names the argument, its value and the fix."""


class DoesNotFit(Show1Error):
    """A run that cannot fit the device's memory; the message gives the figures and the levers."""


def require(condition: bool, message: str) -> None:
    """Raise InputError(message) unless condition holds."""
    if not condition:
        raise InputError(message)
