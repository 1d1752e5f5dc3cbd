"""Errors medai raises on purpose. Each message names the problem and what was expected.

Messages never contain patient data: they name files, fields and shapes, not values read from records.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MedaiError(Exception):
    """Base class of every error medai raises on purpose (the CLI prints these as one line)."""


class InvalidInputError(MedaiError, ValueError):
    """User input (a parameter, a file, an array) is not what was expected."""


class DataNotFoundError(MedaiError, FileNotFoundError):
    """A dataset or file could not be found locally and could not be downloaded."""


class BundleIntegrityError(MedaiError):
    """A saved model bundle is incomplete or its checksums do not match."""


class MissingDependencyError(MedaiError, ImportError):
    """An optional dependency is needed; the message names the pip extra that installs it."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest valid choice, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def check_choice(parameter: str, value: str, choices: Iterable[str]) -> str:
    """Validate that ``value`` is one of ``choices``; raise InvalidInputError naming the nearest one."""
    choices = list(choices)
    if value not in choices:
        raise InvalidInputError(
            f"The '{parameter}' parameter must be one of {', '.join(map(repr, choices))}; "
            f"got {value!r}.{did_you_mean(str(value), choices)}"
        )
    return value


def require(module: str, extra: str):
    """Import an optional dependency, or raise MissingDependencyError naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependencyError(
            f"This feature needs the optional package '{module.split('.')[0]}'. "
            f"Install it with: pip install 'medai[{extra}]'"
        ) from error
