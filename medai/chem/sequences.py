"""Integer encodings of protein sequences and SMILES strings, one code per character (DeepDTA style).

Code 0 is padding. Longer inputs are truncated to ``max_length`` (DeepDTA: proteins 1200 for DAVIS and 1000 for
KIBA, SMILES 85 for DAVIS and 100 for KIBA); the number truncated is returned so callers can report it.

- Proteins: :data:`PROTEIN_ALPHABET`, the 20 standard amino acids then the ambiguity and rare codes X, B, Z, U, O,
  coded 1..25. Any other character makes a sequence invalid (:func:`check_protein_sequence`).
- SMILES: every printable ASCII character (``!`` to ``~``) is coded 1..94 by its position; anything else gets
  :data:`SMILES_UNKNOWN_CODE` (95). The vocabulary size for an embedding is :data:`SMILES_VOCABULARY_SIZE` (96).

Examples:
    >>> encode_proteins(["MKV", "AC"], max_length=4)[0].tolist()
    [[11, 9, 18, 0], [1, 2, 0, 0]]
    >>> encode_smiles_characters(["CCO"], max_length=5)[0].tolist()
    [[35, 35, 47, 0, 0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medai.errors import InvalidInputError

STANDARD_AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
AMBIGUITY_CODES = "XBZUO"  # unknown, Asx, Glx, selenocysteine, pyrrolysine
PROTEIN_ALPHABET = STANDARD_AMINO_ACIDS + AMBIGUITY_CODES
PROTEIN_VOCABULARY_SIZE = len(PROTEIN_ALPHABET) + 1  # with padding 0
SMILES_UNKNOWN_CODE = 95
SMILES_VOCABULARY_SIZE = 96  # padding 0, printable ASCII 1..94, unknown 95

_PROTEIN_TABLE = np.full(256, -1, dtype=np.int64)
_PROTEIN_TABLE[np.frombuffer(PROTEIN_ALPHABET.encode(), dtype=np.uint8)] = np.arange(1, len(PROTEIN_ALPHABET) + 1)
_SMILES_TABLE = np.full(256, SMILES_UNKNOWN_CODE, dtype=np.int64)
_SMILES_TABLE[33:127] = np.arange(1, 95)


def check_protein_sequence(sequence) -> tuple[str | None, str]:
    """Validate one sequence; return (upper-case sequence, "") or (None, reason naming the bad letters)."""
    if not isinstance(sequence, str) or not sequence.strip():
        return None, "empty sequence"
    text = sequence.strip().upper()
    bad = sorted(set(text) - set(PROTEIN_ALPHABET))
    if bad:
        return None, (f"characters {bad} are not amino-acid codes (expected the 20 standard letters or "
                      f"{', '.join(AMBIGUITY_CODES)})")
    return text, ""


def encode_proteins(sequences: Sequence[str], max_length: int = 1000) -> tuple[np.ndarray, int]:
    """Protein sequences -> (int64 codes of shape (n, max_length), number of sequences truncated).

    Raises:
        InvalidInputError: a sequence holds a character outside :data:`PROTEIN_ALPHABET` (validate first with
            :func:`check_protein_sequence`).
    """
    codes, truncated = _encode(sequences, max_length, _PROTEIN_TABLE, "max_length")
    if (codes < 0).any():
        row = int(np.flatnonzero((codes < 0).any(axis=1))[0])
        raise InvalidInputError(f"Protein sequence {row} holds characters outside {PROTEIN_ALPHABET}; validate "
                                f"sequences with check_protein_sequence first.")
    return codes, truncated


def encode_smiles_characters(smiles: Sequence[str], max_length: int = 100) -> tuple[np.ndarray, int]:
    """SMILES strings -> (int64 character codes of shape (n, max_length), number truncated)."""
    return _encode(smiles, max_length, _SMILES_TABLE, "max_length")


def _encode(texts: Sequence[str], max_length: int, table: np.ndarray, parameter: str) -> tuple[np.ndarray, int]:
    if not isinstance(max_length, int) or max_length < 1:
        raise InvalidInputError(f"The '{parameter}' parameter must be an integer >= 1; got {max_length!r}.")
    codes = np.zeros((len(texts), max_length), dtype=np.int64)  # (n, max_length), 0 = padding
    truncated = 0
    for i, text in enumerate(texts):
        points = np.frombuffer(str(text).encode("utf-32-le"), dtype=np.uint32)  # one code point per character
        truncated += len(points) > max_length
        points = np.minimum(points[:max_length], 255)  # every non-ASCII character maps like 255: unknown
        codes[i, : len(points)] = table[points]
    return codes, int(truncated)
