"""Molecules as a :class:`~medai.engine.trainer.CollatedDataset`: batches built on demand from sample indices.

Graphs of different sizes cannot be stacked into one tensor, so instead of slicing in-memory tensors the Trainer
asks :meth:`MoleculeDataset.collate` for each batch. The graphs stay packed as integer codes
(:class:`~medai.chem.graphs.MolGraphSet`) and are expanded per batch by vectorised numpy code (no per-molecule
Python loop), so collating a batch of 50 molecules costs well under a millisecond.

Batch keys: the graph tensors of :meth:`~medai.chem.graphs.BatchMolGraph.tensors` plus ``n_molecules`` (0-d),
``fingerprint`` (batch, n_bits) float32, ``molecule_features`` (batch, n_extra) float32 and ``label``
(batch, n_tasks) float32 with NaN for missing; each only when the dataset holds it.

Examples:
    >>> import numpy as np
    >>> from medai.chem.featurise import featurise
    >>> graphs = featurise(["CCO", "c1ccccc1", "CC(=O)O"], "graph", use_cache=False)
    >>> data = MoleculeDataset(graphs=graphs, labels=np.array([[1.0], [0.0], [np.nan]]))
    >>> batch = data.collate(np.array([2, 0]))
    >>> int(batch["n_molecules"]), tuple(batch["label"].shape), batch["batch"].tolist()
    (2, (2, 1), [0, 0, 0, 0, 1, 1, 1])
"""

from __future__ import annotations

import numpy as np
import torch

from medai.chem.graphs import MolGraphSet
from medai.errors import InvalidInputError


class MoleculeDataset:
    """Graphs, fingerprints, extra features and labels of n molecules; any of the inputs may be absent.

    Args:
        graphs: packed molecular graphs of the n molecules (for message passing networks).
        fingerprints: array of shape (n, n_bits) (for fingerprint networks).
        features: extra molecule-level features, shape (n, n_extra), already normalised.
        labels: float array of shape (n, n_tasks), NaN = missing; None for unlabelled molecules.
    """

    def __init__(self, graphs: MolGraphSet | None = None, fingerprints: np.ndarray | None = None,
                 features: np.ndarray | None = None, labels: np.ndarray | None = None):
        sizes = {name: len(value) for name, value in (("graphs", graphs), ("fingerprints", fingerprints),
                                                      ("features", features), ("labels", labels)) if value is not None}
        if not sizes or len(set(sizes.values())) != 1:
            raise InvalidInputError(f"A MoleculeDataset needs inputs with one row per molecule; got sizes {sizes}.")
        self.n = next(iter(sizes.values()))
        self.graphs = graphs
        self.fingerprints = None if fingerprints is None else np.asarray(fingerprints)
        self.features = None if features is None else np.asarray(features, dtype=np.float32)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.float32).reshape(len(self), -1)

    def __len__(self) -> int:
        return self.n

    def collate(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        """The batch dict of the molecules at ``indices`` (shape (batch,)), in that order."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        batch: dict[str, torch.Tensor] = {"n_molecules": torch.tensor(len(indices))}
        if self.graphs is not None:
            batch |= self.graphs.batch(indices).tensors()
        if self.fingerprints is not None:
            batch["fingerprint"] = torch.from_numpy(self.fingerprints[indices].astype(np.float32))
        if self.features is not None:
            batch["molecule_features"] = torch.from_numpy(self.features[indices])
        if self.labels is not None:
            batch["label"] = torch.from_numpy(self.labels[indices])
        return batch
