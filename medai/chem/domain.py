"""Applicability domain: how similar a molecule is to the molecules a model was trained on.

The score of a molecule is its largest Tanimoto similarity to any training molecule, on Morgan fingerprint bits
(radius 2, 2,048 bits). A model's errors grow as this similarity falls (Sheridan et al. 2004), so molecules scoring
below a threshold are flagged as outside the domain. The threshold is a low percentile (default the 5th) of the
validation molecules' scores: about 5% of molecules like the validation set are flagged, and molecules far from
all training chemistry nearly always are. The training fingerprints are kept, bit-packed, with the model.

Examples:
    >>> import numpy as np
    >>> train = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=np.uint8)
    >>> domain = ApplicabilityDomain().fit(train, np.array([[1, 1, 0, 0]], dtype=np.uint8))
    >>> [round(float(s), 3) for s in domain.score(np.array([[1, 0, 0, 0], [0, 1, 1, 1]], dtype=np.uint8))]
    [0.5, 0.667]
"""

from __future__ import annotations

import numpy as np

from medai.errors import InvalidInputError

CHUNK = 1024  # query molecules per similarity block: (CHUNK, n_train) float32 at a time


def max_tanimoto(queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Largest Tanimoto similarity of each query to any reference, fingerprints as 0/1 arrays.

    Args:
        queries: array of shape (n_queries, n_bits).
        reference: array of shape (n_reference, n_bits).

    Returns:
        float32 array of shape (n_queries,); a query without any set bit scores 0.
    """
    queries, reference = (np.asarray(a) > 0 for a in (queries, reference))
    if queries.shape[1:] != reference.shape[1:] or len(reference) == 0:
        raise InvalidInputError(f"Fingerprints must have the same length and the reference must not be empty; got "
                                f"{queries.shape} and {reference.shape}.")
    ref = reference.astype(np.float32).T  # (n_bits, n_reference)
    ref_counts = ref.sum(axis=0)  # (n_reference,)
    best = np.zeros(len(queries), dtype=np.float32)
    for begin in range(0, len(queries), CHUNK):
        block = queries[begin:begin + CHUNK].astype(np.float32)  # (chunk, n_bits)
        shared = block @ ref  # (chunk, n_reference)
        union = block.sum(axis=1, keepdims=True) + ref_counts - shared
        best[begin:begin + CHUNK] = (shared / np.maximum(union, 1.0)).max(axis=1)
    return best


class ApplicabilityDomain:
    """Max-Tanimoto-to-training score with a threshold from validation molecules.

    Args:
        percentile: the threshold is this percentile of the validation molecules' scores.
    """

    def __init__(self, percentile: float = 5.0):
        self.percentile = percentile

    def fit(self, train_bits: np.ndarray, val_bits: np.ndarray) -> ApplicabilityDomain:
        """Keep the training fingerprints (n_train, n_bits) and set the threshold from validation ones."""
        self.train_bits_ = (np.asarray(train_bits) > 0).astype(np.uint8)
        self.n_bits_ = self.train_bits_.shape[1]
        scores = self.score(val_bits) if len(val_bits) else np.zeros(1, np.float32)
        self.threshold_ = float(np.percentile(scores, self.percentile))
        return self

    def score(self, bits: np.ndarray) -> np.ndarray:
        """Max Tanimoto similarity to the training molecules, shape (n_molecules,)."""
        return max_tanimoto(bits, self.train_bits_)

    def flag(self, bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores, out-of-domain flags) of molecules' fingerprints (n_molecules, n_bits)."""
        scores = self.score(bits)
        return scores, scores < self.threshold_

    def arrays(self) -> dict[str, np.ndarray]:
        """The training fingerprints, bit-packed, for a safetensors file."""
        return {"train_bits": np.packbits(self.train_bits_, axis=1)}

    def to_dict(self) -> dict:
        return {"method": "max Tanimoto similarity to the training set (Morgan bits, radius 2)",
                "percentile": self.percentile, "threshold": self.threshold_, "n_bits": self.n_bits_,
                "n_train": len(self.train_bits_), "threshold_from": "validation split"}

    @classmethod
    def from_parts(cls, data: dict, arrays: dict[str, np.ndarray]) -> ApplicabilityDomain:
        domain = cls(data["percentile"])
        domain.train_bits_ = np.unpackbits(arrays["train_bits"], axis=1)[:, : data["n_bits"]]
        domain.n_bits_, domain.threshold_ = data["n_bits"], float(data["threshold"])
        return domain
