"""One place for medai's settings, read from the environment.

- ``MEDAI_DATA_DIR``: folder of local datasets (default ``../shared/data`` when it exists).
- ``MEDAI_CACHE_DIR``: downloads and caches (default ``~/.cache/medai``).
- ``MEDAI_OFFLINE=1``: never try the network.
"""

from __future__ import annotations

import os
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path | None:
    """Return the folder of local datasets, or None when no such folder exists.

    ``MEDAI_DATA_DIR`` wins; otherwise ``../shared/data`` relative to the working directory or to
    the source checkout is used when it exists.
    """
    configured = os.environ.get("MEDAI_DATA_DIR")
    if configured:
        return Path(configured).expanduser()
    for base in (Path.cwd(), _REPO_ROOT):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def cache_dir() -> Path:
    """Return the cache folder (created on demand by callers)."""
    configured = os.environ.get("MEDAI_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "medai"


def offline() -> bool:
    """True when ``MEDAI_OFFLINE`` asks medai never to use the network."""
    return os.environ.get("MEDAI_OFFLINE", "").lower() in {"1", "true", "yes"}
