"""Networks for tables of clinical measurements (lab panels, vital signs, demographics).

Input rows follow ``medai.transforms.tabular.TabularPreprocessor``'s layout, shape (batch, 2 * n_numeric + n_categorical):
standardised numeric values, their missing-value indicators, then categorical codes (0 = missing or unseen).
"""

from __future__ import annotations

import torch
from torch import nn

from medai.errors import InvalidInputError
from medai.models.registry import NETWORKS


@NETWORKS.register(
    "tabular_mlp",
    modality="table",
    description="MLP over standardised numbers, missing-value indicators and embeddings of categorical columns.",
    n_numeric=4,
    cardinalities=(),
)
class TabularMLP(nn.Module):
    """Embeddings for categorical columns, concatenated with numbers and missing indicators, then an MLP.

    Args:
        n_numeric: number of numeric columns.
        cardinalities: for each categorical column, its number of codes (categories + 1 for missing/unseen).
        num_classes: number of output classes.
        hidden: widths of the hidden layers.
        dropout: dropout after each hidden layer.
        embedding_dim: largest embedding width (a column with k codes gets min(embedding_dim, (k + 1) // 2)).
        wide: add a linear path from the inputs (numbers, indicators, embeddings) to the logits beside the MLP
            ("wide and deep"): the network starts from a logistic regression and learns the nonlinear part on top.
    """

    def __init__(
        self,
        n_numeric: int = 4,
        cardinalities=(),
        num_classes: int = 2,
        hidden=(64, 32),
        dropout: float = 0.2,
        embedding_dim: int = 8,
        wide: bool = False,
    ):
        super().__init__()
        if n_numeric < 0 or (n_numeric == 0 and not cardinalities):
            raise InvalidInputError(f"tabular_mlp needs at least one column; got {n_numeric} numeric and no categorical.")
        if num_classes < 2:
            raise InvalidInputError(f"num_classes must be >= 2; got {num_classes}.")
        self.n_numeric = n_numeric
        self.cardinalities = [int(k) for k in cardinalities]
        self.embeddings = nn.ModuleList(nn.Embedding(k, min(embedding_dim, (k + 1) // 2)) for k in self.cardinalities)
        width = 2 * n_numeric + sum(e.embedding_dim for e in self.embeddings)
        self.wide = nn.Linear(width, num_classes) if wide else None
        layers = []
        for size in hidden:
            layers += [nn.Linear(width, size), nn.BatchNorm1d(size), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        numeric = rows[:, : 2 * self.n_numeric]  # (batch, 2 * n_numeric): values then missing indicators
        codes = rows[:, 2 * self.n_numeric :].round().long()  # (batch, n_categorical)
        parts = [numeric] + [embed(codes[:, i].clamp(0, embed.num_embeddings - 1)) for i, embed in enumerate(self.embeddings)]
        inputs = torch.cat(parts, dim=1)  # (batch, width)
        logits = self.head(self.body(inputs))  # (batch, num_classes)
        return logits if self.wide is None else logits + self.wide(inputs)
