"""Encryption at rest: AES-256-GCM in authenticated chunks, with a versioned header and a pluggable key source.

File layout (all integers big-endian)::

    magic "MEDAIENC" (8) | version (1) | algorithm (1) | chunk size (4) | key-id length (2) | key id (ascii)
    | salt (32) | nonce prefix (7)                                  <- the header, authenticated with every chunk
    chunk 0 | chunk 1 | ... | chunk n-1                              <- each: ciphertext of <= chunk size bytes + 16-byte tag

Each file gets its own AES key, derived with HKDF-SHA256 from the master key and the file's random salt, so a master
key can protect any number of files without nonce reuse. Chunk ``i`` is sealed with the nonce
``prefix (7) | i (4) | last (1)`` and the header as associated data (the STREAM construction of Hoang et al. 2015):
a flipped byte anywhere, chunks swapped, dropped or appended, or a file cut short fails authentication.

Decryption to a file writes into a private temporary file next to the destination and renames it only after the
last chunk has been authenticated; nothing is left behind on failure.

The master key (32 bytes) comes from ``MEDAI_ENCRYPTION_KEY`` (64 hex characters or base64) or the file named by
``MEDAI_ENCRYPTION_KEY_FILE`` (the same text, or 32 raw bytes). A KMS plugs in as a :class:`KeyProvider`.

Examples:
    >>> provider = StaticKeyProvider(bytes(range(32)))
    >>> sealed = encrypt_bytes(b"patient-derived data", provider)
    >>> sealed[:8], decrypt_bytes(sealed, provider)
    (b'MEDAIENC', b'patient-derived data')
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import io
import os
import secrets
import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from medai.errors import InvalidInputError, MedaiError, require

MAGIC = b"MEDAIENC"
VERSION = 1
AES_256_GCM = 1
KEY_ENV = "MEDAI_ENCRYPTION_KEY"
KEY_FILE_ENV = "MEDAI_ENCRYPTION_KEY_FILE"
KEY_BYTES = 32
TAG_BYTES = 16
SALT_BYTES = 32
PREFIX_BYTES = 7
DEFAULT_CHUNK_BYTES = 1 << 20  # 1 MiB of plaintext per authenticated chunk
MAX_CHUNK_BYTES = 1 << 26
ENCRYPTED_SUFFIX = ".enc"
_FIXED = struct.Struct(">8sBBIH")  # magic, version, algorithm, chunk size, key-id length


class EncryptionKeyError(InvalidInputError):
    """No key is configured, the key is malformed, or it is not the key a file was encrypted with."""


class CiphertextError(MedaiError):
    """An encrypted file is not one, is of an unknown version, was tampered with, or is truncated."""


@runtime_checkable
class KeyProvider(Protocol):
    """Where master keys come from. ``current`` names the key new files are sealed with; ``key_for`` finds the key
    a file names in its header (a KMS provider returns unwrapped data keys; raise EncryptionKeyError if unknown)."""

    def current(self) -> tuple[str, bytes]: ...

    def key_for(self, key_id: str) -> bytes: ...


def key_id_of(key: bytes) -> str:
    """A public fingerprint of a key (16 hex characters): names the key in headers, reveals nothing about it."""
    return hmac.new(key, b"medai key id v1", hashlib.sha256).hexdigest()[:16]


class StaticKeyProvider:
    """One master key held in memory; its id is the key's fingerprint."""

    def __init__(self, key: bytes):
        if len(key) != KEY_BYTES:
            raise EncryptionKeyError(f"An AES-256 key has {KEY_BYTES} bytes; this one has {len(key)}.")
        self._key = key
        self.key_id = key_id_of(key)

    def current(self) -> tuple[str, bytes]:
        return self.key_id, self._key

    def key_for(self, key_id: str) -> bytes:
        if key_id != self.key_id:
            raise EncryptionKeyError(
                f"Wrong key: the file was encrypted with key id {key_id}, the configured key has id {self.key_id}."
            )
        return self._key


def parse_key(text: bytes | str, source: str, *, allow_raw: bool = False) -> bytes:
    """32 key bytes from 64 hex characters or base64 (standard or URL-safe); with ``allow_raw`` (key files) also
    32 raw bytes. ``source`` names where the key came from in errors; the key itself is never shown."""
    raw = text.encode() if isinstance(text, str) else bytes(text)
    if allow_raw and len(raw) == KEY_BYTES:
        return raw
    stripped = raw.strip()
    candidates = []
    with contextlib.suppress(ValueError):
        candidates.append(bytes.fromhex(stripped.decode("ascii")))
    for altchars in (None, b"-_"):
        with contextlib.suppress(binascii.Error, ValueError):
            candidates.append(base64.b64decode(stripped + b"=" * (-len(stripped) % 4), altchars, validate=True))
    for key in candidates:
        if len(key) == KEY_BYTES:
            return key
    raise EncryptionKeyError(
        f"{source} does not hold a 256-bit key: expected 64 hex characters or base64 of 32 bytes"
        f"{' (or 32 raw bytes)' if allow_raw else ''}; make one with "
        "`python -c 'import secrets; print(secrets.token_hex(32))'`."
    )


def key_from_environment() -> StaticKeyProvider:
    """The key of ``MEDAI_ENCRYPTION_KEY`` or ``MEDAI_ENCRYPTION_KEY_FILE``; a clear error when neither is set."""
    if os.environ.get(KEY_ENV):
        return StaticKeyProvider(parse_key(os.environ[KEY_ENV], KEY_ENV))
    if os.environ.get(KEY_FILE_ENV):
        path = Path(os.environ[KEY_FILE_ENV]).expanduser()
        if not path.is_file():
            raise EncryptionKeyError(f"{KEY_FILE_ENV} names {path}, which is not a file; expected a key file.")
        return StaticKeyProvider(parse_key(path.read_bytes(), f"The key file {path}", allow_raw=True))
    raise EncryptionKeyError(
        f"No encryption key: set {KEY_ENV} to 64 hex characters (e.g. the output of "
        f"`python -c 'import secrets; print(secrets.token_hex(32))'`) or {KEY_FILE_ENV} to a file holding one."
    )


def _provider(keys: KeyProvider | bytes | None) -> KeyProvider:
    if keys is None:
        return key_from_environment()
    return StaticKeyProvider(keys) if isinstance(keys, bytes | bytearray) else keys


def _cipher(master: bytes, salt: bytes):
    require("cryptography", "crypto")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    file_key = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=b"medai file key v1").derive(master)
    return AESGCM(file_key)


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    if index >= 1 << 32:
        raise InvalidInputError("The file is too large for this chunk size; use a larger chunk_size.")
    return prefix + struct.pack(">IB", index, 1 if last else 0)


# -- streaming ----------------------------------------------------------------------------------------------------


def _read_exact(source: BinaryIO, size: int) -> bytes:
    """``size`` bytes, fewer only at the end of the stream (pipes may return short reads before it)."""
    parts, left = [], size
    while left:
        part = source.read(left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def encrypt_stream(source: BinaryIO, sink: BinaryIO, keys: KeyProvider | bytes | None = None,
                   chunk_size: int = DEFAULT_CHUNK_BYTES) -> int:
    """Encrypt ``source`` into ``sink`` chunk by chunk; returns the number of plaintext bytes."""
    if not 1 <= chunk_size <= MAX_CHUNK_BYTES:
        raise InvalidInputError(f"chunk_size must be in [1, {MAX_CHUNK_BYTES}]; got {chunk_size}.")
    key_id, master = _provider(keys).current()
    key_id_bytes = key_id.encode("ascii")
    salt, prefix = secrets.token_bytes(SALT_BYTES), secrets.token_bytes(PREFIX_BYTES)
    header = _FIXED.pack(MAGIC, VERSION, AES_256_GCM, chunk_size, len(key_id_bytes)) + key_id_bytes + salt + prefix
    aead = _cipher(master, salt)
    sink.write(header)
    total, index, chunk = 0, 0, _read_exact(source, chunk_size)
    while True:
        following = _read_exact(source, chunk_size) if chunk else b""
        last = not following
        sink.write(aead.encrypt(_nonce(prefix, index, last), chunk, header))
        total += len(chunk)
        if last:
            return total
        index, chunk = index + 1, following


def _read_header(source: BinaryIO) -> tuple[bytes, str, int, bytes, bytes]:
    fixed = _read_exact(source, _FIXED.size)
    if len(fixed) < _FIXED.size or not fixed.startswith(MAGIC):
        raise CiphertextError("Not a medai encrypted file (no MEDAIENC header), or its header is damaged.")
    _, version, algorithm, chunk_size, id_length = _FIXED.unpack(fixed)
    if version != VERSION or algorithm != AES_256_GCM:
        raise CiphertextError(f"Unsupported encrypted-file version {version} / algorithm {algorithm} (this medai "
                              f"reads version {VERSION}); the file is newer than medai or damaged.")
    if not 1 <= chunk_size <= MAX_CHUNK_BYTES:
        raise CiphertextError("The encrypted file's header is damaged (chunk size out of range).")
    rest = _read_exact(source, id_length + SALT_BYTES + PREFIX_BYTES)
    if len(rest) < id_length + SALT_BYTES + PREFIX_BYTES:
        raise CiphertextError("The encrypted file is truncated (incomplete header).")
    try:
        key_id = rest[:id_length].decode("ascii")
    except UnicodeDecodeError:
        raise CiphertextError("The encrypted file's header is damaged (key id is not ASCII).") from None
    salt, prefix = rest[id_length : id_length + SALT_BYTES], rest[id_length + SALT_BYTES :]
    return fixed + rest, key_id, chunk_size, salt, prefix


def decrypt_stream(source: BinaryIO, sink: BinaryIO, keys: KeyProvider | bytes | None = None) -> int:
    """Decrypt ``source`` into ``sink``; every chunk is authenticated before it is written. Returns plaintext bytes.

    Raises:
        CiphertextError: not an encrypted file, tampered with, reordered or truncated.
        EncryptionKeyError: no key, or not the key the file was encrypted with.
    """
    require("cryptography", "crypto")
    from cryptography.exceptions import InvalidTag

    header, key_id, chunk_size, salt, prefix = _read_header(source)
    aead = _cipher(_provider(keys).key_for(key_id), salt)
    block = chunk_size + TAG_BYTES
    total, index, sealed = 0, 0, _read_exact(source, block)
    while True:
        if len(sealed) < TAG_BYTES:
            raise CiphertextError("The encrypted file is truncated or damaged (chunks are missing).")
        following = _read_exact(source, block) if len(sealed) == block else b""
        last = not following
        try:
            plain = aead.decrypt(_nonce(prefix, index, last), sealed, header)
        except InvalidTag:
            raise CiphertextError(
                f"Authentication failed at chunk {index}: the encrypted file was modified, truncated or reordered."
            ) from None
        sink.write(plain)
        total += len(plain)
        if last:
            return total
        index, sealed = index + 1, following


# -- bytes and files ----------------------------------------------------------------------------------------------


def encrypt_bytes(data: bytes, keys: KeyProvider | bytes | None = None, chunk_size: int = DEFAULT_CHUNK_BYTES) -> bytes:
    """Ciphertext (header and chunks) of ``data``."""
    sink = io.BytesIO()
    encrypt_stream(io.BytesIO(data), sink, keys, chunk_size)
    return sink.getvalue()


def decrypt_bytes(data: bytes, keys: KeyProvider | bytes | None = None) -> bytes:
    """Plaintext of an encrypted file held in memory; raises CiphertextError on any tampering."""
    sink = io.BytesIO()
    decrypt_stream(io.BytesIO(data), sink, keys)
    return sink.getvalue()


def is_encrypted(path: str | os.PathLike) -> bool:
    """True when ``path`` is a file that starts with the medai encryption header."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(MAGIC)) == MAGIC
    except (OSError, ValueError):  # not a file, unreadable, or not a path at all (a SMILES, a dataset name)
        return False


@contextlib.contextmanager
def _atomic_output(destination: Path, overwrite: bool) -> Iterator[BinaryIO]:
    """A private (0600) temporary file beside ``destination``, renamed onto it only when the block succeeds."""
    if destination.exists() and not overwrite:
        raise InvalidInputError(f"{destination} already exists; pass overwrite=True (CLI: --force) to replace it.")
    destination.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part", dir=destination.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _check_paths(source: Path, destination: Path) -> None:
    if not source.is_file():
        raise InvalidInputError(f"No file at {source}.")
    if destination.exists() and destination.resolve() == source.resolve():
        raise InvalidInputError(f"The output {destination} is the input; write to another file.")


def encrypt_file(source: str | os.PathLike, destination: str | os.PathLike | None = None,
                 keys: KeyProvider | bytes | None = None, *, chunk_size: int = DEFAULT_CHUNK_BYTES,
                 overwrite: bool = False) -> Path:
    """Encrypt ``source`` to ``destination`` (default: ``source`` + ``.enc``); the source is left in place."""
    source = Path(source)
    destination = Path(destination) if destination is not None else source.with_name(source.name + ENCRYPTED_SUFFIX)
    _check_paths(source, destination)
    if is_encrypted(source):
        raise InvalidInputError(f"{source} is already encrypted.")
    provider = _provider(keys)  # a missing key fails before anything is written
    with open(source, "rb") as reader, _atomic_output(destination, overwrite) as writer:
        encrypt_stream(reader, writer, provider, chunk_size)
    return destination


def decrypt_file(source: str | os.PathLike, destination: str | os.PathLike | None = None,
                 keys: KeyProvider | bytes | None = None, *, overwrite: bool = False) -> Path:
    """Decrypt ``source`` to ``destination`` (default: ``source`` without ``.enc``), atomically: the destination
    appears only after the whole file has been authenticated."""
    source = Path(source)
    if destination is None:
        if source.suffix != ENCRYPTED_SUFFIX:
            raise InvalidInputError(f"{source} does not end in {ENCRYPTED_SUFFIX}; name the output explicitly.")
        destination = source.with_suffix("")
    destination = Path(destination)
    _check_paths(source, destination)
    provider = _provider(keys)
    with open(source, "rb") as reader, _atomic_output(destination, overwrite) as writer:
        decrypt_stream(reader, writer, provider)
    return destination


def open_input(path: str | os.PathLike, keys: KeyProvider | bytes | None = None) -> bytes:
    """The plaintext bytes of ``path``, in memory: decrypted when it is encrypted, read as is otherwise."""
    data = Path(path).read_bytes()
    return decrypt_bytes(data, keys) if data.startswith(MAGIC) else data


def _private_root(size_hint: int) -> str | None:
    """RAM-backed /dev/shm when it exists and has room (cleartext then never reaches a disk), else the system temp."""
    shm = Path("/dev/shm")
    with contextlib.suppress(OSError):
        if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 2 * size_hint + (64 << 20):
            return str(shm)
    return None


@contextlib.contextmanager
def decrypted_input(data, keys: KeyProvider | bytes | None = None) -> Iterator:
    """Yield ``data`` unchanged unless it names an encrypted file; then yield the path of its plaintext in a private
    temporary folder (mode 0700, on /dev/shm when possible), named like the input without ``.enc``, and remove the
    folder on exit, whatever happens. Readers that take a path (every medai loader) then work unchanged."""
    if not isinstance(data, str | os.PathLike) or not is_encrypted(data):
        yield data
        return
    source = Path(data)
    name = source.name[: -len(ENCRYPTED_SUFFIX)] if source.name.endswith(ENCRYPTED_SUFFIX) else source.name
    folder = tempfile.mkdtemp(prefix="medai-decrypted-", dir=_private_root(source.stat().st_size))
    try:
        os.chmod(folder, 0o700)
        decrypt_file(source, Path(folder) / name, keys)
        plaintext = Path(folder) / name
        yield str(plaintext) if isinstance(data, str) else plaintext
    finally:
        shutil.rmtree(folder, ignore_errors=True)
