"""Directed message passing neural network (D-MPNN, Yang et al. 2019), written as chemprop v2 composes it.

Three parts, each a small module passed to the next (composition, not a class tree):

- :class:`BondMessagePassing`: hidden states live on directed bonds. ``h0 = relu(W_i [x_source | e])``; each
  of ``depth - 1`` steps sums the states entering every atom, subtracts the reverse bond's state (so a message
  never flows straight back) and updates ``h = relu(h0 + W_h m)``; finally atom states are
  ``relu(W_o [x_atom | sum of incoming h])``.
- aggregation: ``"mean"``, ``"sum"`` or ``"norm"`` (sum / 100, chemprop's NormAggregation) over each molecule's atoms.
- a feed-forward head on ``[molecule vector | extra molecule features]`` (e.g. normalised RDKit descriptors,
  chemprop's ``rdkit_2d_normalized``), giving one raw output per task.

The batch keys are those of :meth:`medai.chem.graphs.BatchMolGraph.tensors` plus ``n_molecules`` (a 0-d int64
tensor) and, when the network was built with ``n_extra > 0``, ``molecule_features`` of shape (n_molecules, n_extra).

Examples:
    >>> import torch
    >>> from medai.chem.graphs import MolGraphFeaturiser
    >>> from rdkit import Chem
    >>> graphs = MolGraphFeaturiser().featurise_mols([Chem.MolFromSmiles(s) for s in ("CCO", "c1ccccc1")])
    >>> batch = graphs.batch([0, 1]).tensors() | {"n_molecules": torch.tensor(2)}
    >>> DMPNN(n_outputs=3, hidden=32)(batch).shape
    torch.Size([2, 3])
"""

from __future__ import annotations

import torch
from torch import nn

from medai.chem.graphs import ATOM_FEATURE_DIM, BOND_FEATURE_DIM
from medai.errors import InvalidInputError, check_choice
from medai.models.registry import NETWORKS

AGGREGATIONS = ("mean", "sum", "norm")
NORM_DIVISOR = 100.0  # chemprop's NormAggregation


def feed_forward(width_in: int, hidden: int, n_layers: int, n_outputs: int, dropout: float) -> nn.Sequential:
    """``n_layers`` hidden layers (Linear, ReLU, Dropout) then a linear output layer; 0 layers is a linear model."""
    layers: list[nn.Module] = []
    for _ in range(n_layers):
        layers += [nn.Dropout(dropout), nn.Linear(width_in, hidden), nn.ReLU()]
        width_in = hidden
    return nn.Sequential(*layers, nn.Dropout(dropout), nn.Linear(width_in, n_outputs))


class BondMessagePassing(nn.Module):
    """Messages on directed bonds, read out as atom states of width ``hidden`` (see the module docstring)."""

    def __init__(self, atom_dim: int = ATOM_FEATURE_DIM, bond_dim: int = BOND_FEATURE_DIM, hidden: int = 300,
                 depth: int = 3, dropout: float = 0.0):
        super().__init__()
        self.depth = depth
        self.W_i = nn.Linear(atom_dim + bond_dim, hidden, bias=False)
        self.W_h = nn.Linear(hidden, hidden, bias=False)
        self.W_o = nn.Linear(atom_dim + hidden, hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, atom_features, edge_features, edge_index, rev_edge_index) -> torch.Tensor:
        source, target = edge_index[0], edge_index[1]  # (n_edges,) each
        h0 = self.W_i(torch.cat([atom_features[source], edge_features], dim=1))  # (n_edges, hidden)
        h = torch.relu(h0)
        for _ in range(1, self.depth):
            incoming = _sum_into(h, target, len(atom_features))  # (n_atoms, hidden)
            message = incoming[source] - h[rev_edge_index]  # (n_edges, hidden): all but the reverse bond
            h = self.dropout(torch.relu(h0 + self.W_h(message)))
        incoming = _sum_into(h, target, len(atom_features))  # (n_atoms, hidden)
        return self.dropout(torch.relu(self.W_o(torch.cat([atom_features, incoming], dim=1))))  # (n_atoms, hidden)


@NETWORKS.register(
    "dmpnn",
    modality="molecule",
    description="Directed message passing network on bonds (chemprop v2 style), optional molecule features.",
)
class DMPNN(nn.Module):
    """Message passing, aggregation and a feed-forward head; raw outputs of shape (n_molecules, n_outputs).

    Args:
        n_outputs: number of tasks.
        hidden: width of bond and atom states (chemprop: 300).
        depth: message passing steps, counting the initial one (chemprop: 3).
        aggregation: ``"mean"``, ``"sum"`` or ``"norm"``.
        ffn_hidden: width of the head's hidden layers.
        ffn_layers: number of hidden layers of the head (chemprop: 1).
        dropout: dropout in message passing and head.
        n_extra: width of the extra molecule features concatenated before the head (0: none).
        batch_norm: batch-normalise the molecule vectors before the head.
    """

    def __init__(self, n_outputs: int = 1, hidden: int = 300, depth: int = 3, aggregation: str = "mean",
                 ffn_hidden: int = 300, ffn_layers: int = 1, dropout: float = 0.0, n_extra: int = 0,
                 batch_norm: bool = False):
        super().__init__()
        check_choice("aggregation", aggregation, AGGREGATIONS)
        for name, value, low in (("n_outputs", n_outputs, 1), ("hidden", hidden, 1), ("depth", depth, 1),
                                 ("ffn_hidden", ffn_hidden, 1), ("ffn_layers", ffn_layers, 0), ("n_extra", n_extra, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InvalidInputError(f"The '{name}' parameter of dmpnn must be an int >= {low}; got {value!r}.")
        self.n_outputs, self.n_extra, self.aggregation = n_outputs, n_extra, aggregation
        self.message_passing = BondMessagePassing(hidden=hidden, depth=depth, dropout=dropout)
        self.norm = nn.BatchNorm1d(hidden) if batch_norm else nn.Identity()
        self.head = feed_forward(hidden + n_extra, ffn_hidden, ffn_layers, n_outputs, dropout)

    def molecule_vectors(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pooled atom states, shape (n_molecules, hidden)."""
        atoms = self.message_passing(batch["atom_features"], batch["edge_features"], batch["edge_index"],
                                     batch["rev_edge_index"])  # (n_atoms, hidden)
        n_molecules = int(batch["n_molecules"])
        pooled = _sum_into(atoms, batch["batch"], n_molecules)  # (n_molecules, hidden)
        if self.aggregation == "mean":
            counts = torch.bincount(batch["batch"], minlength=n_molecules).clamp_min(1)
            pooled = pooled / counts.unsqueeze(1).to(pooled.dtype)
        elif self.aggregation == "norm":
            pooled = pooled / NORM_DIVISOR
        return self.norm(pooled)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        vectors = self.molecule_vectors(batch)  # (n_molecules, hidden)
        if self.n_extra:
            extra = batch.get("molecule_features")
            if extra is None or extra.shape != (len(vectors), self.n_extra):
                got = "none" if extra is None else tuple(extra.shape)
                raise InvalidInputError(f"dmpnn was built with {self.n_extra} extra molecule features; the batch has "
                                        f"'molecule_features' of shape {got}, expected ({len(vectors)}, {self.n_extra}).")
            vectors = torch.cat([vectors, extra.to(vectors.dtype)], dim=1)  # (n_molecules, hidden + n_extra)
        return self.head(vectors)  # (n_molecules, n_outputs)


def _sum_into(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Rows of ``values`` (n, width) summed into ``size`` rows by ``index`` (n,)."""
    return values.new_zeros(size, values.shape[1]).index_add_(0, index, values)
