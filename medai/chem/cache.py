"""A content-addressed cache of arrays (``.npz``, loaded with ``allow_pickle=False``) and JSON, never pickle.

Entries live in ``<medai cache dir>/chem/`` (see :func:`medai.settings.cache_dir`) and are named by a SHA-256 of
what produced them: the canonical SMILES list, the settings and the RDKit version. A changed molecule, option or
RDKit release therefore gives a new key instead of a stale entry. Writes go to a temporary file first and are
renamed into place, so an interrupted write leaves no half-written entry behind; an unreadable entry counts as a
miss and is rebuilt.

Examples:
    >>> key = cache_key(["CCO", "c1ccccc1"], {"radius": 2})
    >>> key == cache_key(["CCO", "c1ccccc1"], {"radius": 2}), key == cache_key(["CCO"], {"radius": 2})
    (True, False)
    >>> entry_path("morgan", key, ".npz").name == f"morgan-{key[:32]}.npz"
    True
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from medai import settings

CACHE_FORMAT = 1  # bump when the layout of cached entries changes


def cache_key(*parts) -> str:
    """SHA-256 hex digest of JSON-serialisable parts (lists of SMILES, option dicts, version strings)."""
    digest = hashlib.sha256(str(CACHE_FORMAT).encode())
    for part in parts:
        if isinstance(part, (list, tuple)) and all(isinstance(item, str) for item in part):
            digest.update("\n".join(part).encode())  # fast path for long SMILES lists
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def rdkit_version() -> str:
    """The installed RDKit version (part of every cache key), or ``"none"``."""
    try:
        from rdkit import __version__
    except ImportError:
        return "none"
    return __version__


def entry_path(kind: str, key: str, suffix: str) -> Path:
    """Where the entry ``kind`` / ``key`` is stored, e.g. ``.../chem/morgan-1f2e....npz``."""
    return settings.cache_dir() / "chem" / f"{kind}-{key[:32]}{suffix}"


def save_arrays(kind: str, key: str, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Store numeric or fixed-width string arrays and a JSON-ready ``meta`` dict; return the ``.npz`` path."""
    path = entry_path(kind, key, ".npz")
    _write(path, lambda handle: np.savez(handle, **arrays), binary=True)
    _write(entry_path(kind, key, ".json"), lambda handle: json.dump({**meta, "key": key}, handle), binary=False)
    return path


def load_arrays(kind: str, key: str) -> tuple[dict[str, np.ndarray], dict] | None:
    """The arrays and meta saved under ``kind`` / ``key``, or None when absent or unreadable."""
    meta = load_json(kind, key)
    path = entry_path(kind, key, ".npz")
    if meta is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    return arrays, meta


def save_json(kind: str, key: str, data) -> Path:
    """Store JSON-ready ``data`` (a dict gets the key added) under ``kind`` / ``key``."""
    path = entry_path(kind, key, ".json")
    payload = {**data, "key": key} if isinstance(data, dict) else {"data": data, "key": key}
    _write(path, lambda handle: json.dump(payload, handle), binary=False)
    return path


def load_json(kind: str, key: str):
    """The JSON saved under ``kind`` / ``key`` (as given to :func:`save_json`), or None when absent or stale."""
    path = entry_path(kind, key, ".json")
    if not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict) or payload.get("key") != key:
        return None
    return payload.get("data", payload) if set(payload) == {"data", "key"} else payload


def _write(path: Path, writer, binary: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(handle, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as stream:
            writer(stream)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
