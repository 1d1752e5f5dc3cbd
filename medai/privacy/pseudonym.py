"""Keyed pseudonyms and per-patient date shifting (HIPAA Safe Harbor-style de-identification of structured records).

The key comes from settings (``MEDAI_DEID_KEY``, or a key file named by ``MEDAI_DEID_KEY_FILE``); it is never stored
with the data it protects. The same key gives the same pseudonym and the same date offset for the same patient, so
tables de-identified separately still join, and the intervals between one patient's events are kept.

>>> p = Pseudonymizer(key=b"0" * 32)
>>> p.pseudonym("12345") == p.pseudonym("12345") != p.pseudonym("12346")
True
>>> len(p.pseudonym("12345", namespace="patient"))
16
>>> offset = p.date_offset_days("12345")
>>> -365 <= offset <= -1
True
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from datetime import date, datetime, timedelta
from pathlib import Path

from medai.errors import InvalidInputError

KEY_ENV = "MEDAI_DEID_KEY"
KEY_FILE_ENV = "MEDAI_DEID_KEY_FILE"
MIN_KEY_BYTES = 16


def load_key(key: bytes | str | None = None, *, allow_ephemeral: bool = False) -> bytes:
    """Return the de-identification key: ``key`` if given, else ``MEDAI_DEID_KEY`` (hex or text), else the file
    named by ``MEDAI_DEID_KEY_FILE``. With ``allow_ephemeral`` a random key is made when none is configured: the
    pseudonyms are then not reproducible across runs (the safe default for one-off exports).
    """
    if key is None:
        env = os.environ.get(KEY_ENV)
        if env:
            key = env
        elif os.environ.get(KEY_FILE_ENV):
            path = Path(os.environ[KEY_FILE_ENV]).expanduser()
            if not path.is_file():
                raise InvalidInputError(f"{KEY_FILE_ENV} names {path}, which is not a file; expected a key file.")
            key = path.read_bytes().strip()
        elif allow_ephemeral:
            return secrets.token_bytes(32)
        else:
            raise InvalidInputError(
                f"No de-identification key: set {KEY_ENV} (at least {MIN_KEY_BYTES} bytes, e.g. the output of "
                f"`python -c 'import secrets; print(secrets.token_hex(32))'`) or {KEY_FILE_ENV}."
            )
    if isinstance(key, str):
        try:
            key = bytes.fromhex(key) if len(key) % 2 == 0 and len(key) >= 2 * MIN_KEY_BYTES else key.encode()
        except ValueError:
            key = key.encode()
    if len(key) < MIN_KEY_BYTES:
        raise InvalidInputError(f"The de-identification key has {len(key)} bytes; expected at least {MIN_KEY_BYTES}.")
    return key


class Pseudonymizer:
    """Keyed HMAC-SHA256 pseudonyms and per-patient date offsets.

    Parameters
    ----------
    key:
        Secret key (bytes, hex or text); see :func:`load_key`.
    max_shift_days:
        Dates are moved back by 1 to ``max_shift_days`` days, a different offset per patient.
    length:
        Number of hex characters kept from the HMAC (16 = 64 bits: collisions are negligible below billions of ids).
    """

    def __init__(self, key: bytes | str | None = None, *, max_shift_days: int = 365, length: int = 16,
                 allow_ephemeral: bool = False):
        if max_shift_days < 1:
            raise InvalidInputError(f"max_shift_days must be at least 1; got {max_shift_days}.")
        self._key = load_key(key, allow_ephemeral=allow_ephemeral)
        self.max_shift_days = int(max_shift_days)
        self.length = int(length)

    def _digest(self, namespace: str, value: object) -> bytes:
        message = f"{namespace}\x1f{value}".encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def pseudonym(self, value: object, namespace: str = "id") -> str:
        """Keyed pseudonym of ``value`` within ``namespace`` (patients and admissions get unrelated pseudonyms)."""
        return self._digest(namespace, value).hex()[: self.length]

    def date_offset_days(self, patient: object) -> int:
        """The patient's date shift in days, in ``[-max_shift_days, -1]`` (dates move into the past)."""
        number = int.from_bytes(self._digest("date-shift", patient)[:8], "big")
        return -(1 + number % self.max_shift_days)

    def shift(self, when: datetime | date, patient: object) -> datetime | date:
        """``when`` moved by the patient's offset; intervals between one patient's dates are unchanged."""
        return when + timedelta(days=self.date_offset_days(patient))
