"""Turn errors into one line on stderr and a non-zero exit code; tracebacks only with MEDAI_DEBUG=1.

Unexpected exceptions are reported by type only: their messages may quote data, and patient data never
goes to the terminal or logs.
"""

from __future__ import annotations

import functools
import os
import sys

import typer

from medai.errors import MedaiError

EXIT_USAGE = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def handle_errors(command):
    """Decorator for CLI commands: MedaiError and OSError become ``error: ...`` and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        if os.environ.get("MEDAI_DEBUG"):
            return command(*args, **kwargs)
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except MedaiError as error:
            raise fail(str(error)) from None
        except OSError as error:
            name = f": {error.filename}" if error.filename else ""
            raise fail(f"{error.strerror or error.__class__.__name__}{name}") from None
        except KeyboardInterrupt:
            typer.echo("interrupted; rerun the same command to resume from the last finished epoch", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as error:  # last resort: report the type, never the (possibly patient) message
            print(
                f"internal error: {error.__class__.__name__} in {command.__name__}; "
                "rerun with MEDAI_DEBUG=1 for the traceback and please report it.",
                file=sys.stderr,
            )
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper
