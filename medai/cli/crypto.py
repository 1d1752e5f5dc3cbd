"""``medai encrypt`` and ``medai decrypt``: AES-256-GCM files at rest (see :mod:`medai.privacy.crypto`).

The key comes from ``MEDAI_ENCRYPTION_KEY`` or ``MEDAI_ENCRYPTION_KEY_FILE``; it is never taken on the command line,
where it would end up in the shell history and the process list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from medai.cli.errors import handle_errors

ForceFlag = Annotated[bool, typer.Option("--force", help="Replace the output file if it exists.")]


@handle_errors
def encrypt(
    file: Annotated[Path, typer.Argument(help="The file to encrypt (left in place; delete it yourself when done).")],
    out: Annotated[Optional[Path], typer.Option(help="Encrypted file to write (default: FILE.enc).")] = None,
    chunk_size: Annotated[int, typer.Option(help="Plaintext bytes per authenticated chunk.")] = 1 << 20,
    force: ForceFlag = False,
):
    """Encrypt a file with AES-256-GCM (key from MEDAI_ENCRYPTION_KEY or MEDAI_ENCRYPTION_KEY_FILE)."""
    from medai.privacy.crypto import encrypt_file

    written = encrypt_file(file, out, chunk_size=chunk_size, overwrite=force)
    typer.echo(f"encrypted {file} -> {written}")


@handle_errors
def decrypt(
    file: Annotated[Path, typer.Argument(help="An encrypted file written by `medai encrypt`.")],
    out: Annotated[Optional[Path], typer.Option(help="Plaintext file to write (default: FILE without .enc).")] = None,
    force: ForceFlag = False,
):
    """Decrypt and authenticate a file; the output appears only when the whole file is intact."""
    from medai.privacy.crypto import decrypt_file

    written = decrypt_file(file, out, overwrite=force)
    typer.echo(f"decrypted {file} -> {written}")
