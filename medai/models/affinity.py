"""Drug-target affinity networks (DeepDTA) and the ``AffinityModel`` regression wrapper.

A drug is its SMILES as character codes and a protein its amino-acid codes (:mod:`medai.chem.sequences`; 0 is
padding, always at the end). Each side is encoded once per distinct drug or protein in a batch, then every pair
(drug, protein) goes through a dense head. Batches are dicts:

- ``"drug"``: int64 (n_drugs, drug_length) and ``"protein"``: int64 (n_proteins, protein_length);
- ``"pair_drug"``, ``"pair_protein"``: optional int64 (n_pairs,) row indices into those two; without them row i
  of ``drug`` pairs with row i of ``protein`` and repeated rows are encoded once (``torch.unique``);
- ``"label"``: optional float (n_pairs,) or (n_pairs, 1) affinities, NaN where unmeasured.

Padding never reaches a prediction: the convolutions run over the longest sequence of the batch (plus the
receptive field) and the global max pool reads only the positions whose window starts inside the sequence, so a
drug or protein gets the same encoding whatever it is batched with and however long its padding is.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from medai.chem.sequences import PROTEIN_VOCABULARY_SIZE, SMILES_VOCABULARY_SIZE
from medai.errors import InvalidInputError
from medai.models.registry import NETWORKS


class SequenceCNN(nn.Module):
    """Embedding, 'valid' 1-D convolutions with ReLU, and a global max pool over the sequence's own positions.

    Args:
        vocabulary_size: number of codes including padding 0.
        embedding_dim: embedding width.
        filters: output channels of each convolution.
        kernels: kernel size of each convolution (same length as ``filters``).
        chunk_size: encode at most this many sequences at a time, sorted by length (None: all at once).
    """

    def __init__(self, vocabulary_size: int, embedding_dim: int = 128, filters=(32, 64, 96), kernels=(4, 8, 12),
                 chunk_size: int | None = None):
        super().__init__()
        self.chunk_size = chunk_size
        if len(filters) != len(kernels) or not filters:
            raise InvalidInputError(f"'filters' and 'kernels' must have the same length >= 1; got {list(filters)} and "
                                    f"{list(kernels)}.")
        self.embedding = nn.Embedding(vocabulary_size, embedding_dim, padding_idx=0)
        widths = [embedding_dim, *filters]
        self.convolutions = nn.ModuleList(nn.Conv1d(a, b, k) for a, b, k in zip(widths, widths[1:], kernels))
        self.receptive_field = sum(k - 1 for k in kernels) + 1
        self.width = int(filters[-1])

    def embed(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(embedded codes of shape (batch, length, embedding_dim), lengths of shape (batch,)); see :meth:`pad`."""
        codes, lengths = self.pad(codes)
        return self.embedding(codes), lengths

    def pad(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(int64 codes of shape (batch, length), lengths of shape (batch,)).

        ``length`` is the longest sequence plus the receptive field minus one (padded with code 0 if needed).
        """
        lengths = (codes > 0).sum(dim=1).clamp_min(1)  # (batch,): codes are left-aligned, 0 = padding
        needed = int(lengths.max()) + self.receptive_field - 1
        codes = F.pad(codes[:, :needed], (0, max(0, needed - codes.shape[1])))  # (batch, needed)
        return codes.long(), lengths

    def encode_embedded(self, embedded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Convolutions and pooling of embedded codes (batch, length, embedding_dim) -> (batch, width)."""
        hidden = F.relu(self.convolutions[0](embedded.transpose(1, 2)))  # (batch, filters, shorter length)
        return self._finish(hidden, lengths)

    def encode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """The same as ``encode_embedded(*embed(codes))``, with the first convolution read from tables.

        Embedding then convolution is linear in the one-hot codes, so the first layer's output at position t is
        ``bias + sum_k table_k[code[t + k]]`` with ``table_k = embedding @ weight[:, :, k].T`` (vocabulary x
        filters): a few lookups instead of a convolution over 128 channels, with the same parameters and gradients.
        """
        codes, lengths = self.pad(codes)
        convolution = self.convolutions[0]
        kernel, steps = convolution.kernel_size[0], codes.shape[1] - convolution.kernel_size[0] + 1
        weight = self.embedding.weight
        embedding = torch.cat([torch.zeros_like(weight[:1]), weight[1:]])  # padding stays zero and gets no gradient
        tables = torch.einsum("ve,oek->kvo", embedding, convolution.weight)  # (kernel, vocabulary, filters)
        hidden = convolution.bias + sum(F.embedding(codes[:, k : k + steps], tables[k]) for k in range(kernel))
        return self._finish(F.relu(hidden).transpose(1, 2), lengths)  # from (batch, steps, filters)

    def _finish(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        for convolution in self.convolutions[1:]:
            hidden = F.relu(convolution(hidden))  # (batch, filters, shorter length)
        positions = torch.arange(hidden.shape[2], device=hidden.device)
        inside = positions[None, :] < lengths[:, None]  # (batch, positions): window starts inside the sequence
        return hidden.masked_fill(~inside[:, None, :], 0.0).amax(dim=2)  # (batch, width); ReLU outputs are >= 0

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """int codes (batch, max_length) -> encodings (batch, width).

        With ``chunk_size``, sequences are encoded in chunks of that many of similar length, so short ones are not
        convolved over the padding of long ones (the result is the same, up to rounding).
        """
        if self.chunk_size is None or len(codes) <= self.chunk_size:
            return self.encode_codes(codes)
        order = torch.argsort((codes > 0).sum(dim=1), stable=True)
        parts = [self.encode_codes(codes[rows]) for rows in order.split(self.chunk_size)]
        return torch.cat(parts)[torch.argsort(order)]  # (batch, width) in the input order


class PairHead(nn.Module):
    """Dense layers with ReLU over concatenated (drug, protein) encodings, dropout after all but the last, -> 1.

    The first layer is applied to each distinct drug and protein before pairing (``W [d; p] = W_d d + W_p p``),
    which gives the same result as on the concatenation of every pair.
    """

    def __init__(self, drug_width: int, protein_width: int, hidden=(1024, 1024, 512), dropout: float = 0.1):
        super().__init__()
        if not 0 <= dropout < 1:
            raise InvalidInputError(f"The 'dropout' parameter must be a float in [0, 1); got {dropout!r}.")
        self.widths = [int(drug_width), int(protein_width)]
        layers, widths = [], [sum(self.widths), *hidden]
        for index, (a, b) in enumerate(itertools.pairwise(widths)):
            layers += [nn.Linear(a, b), nn.ReLU()]
            if index < len(hidden) - 1:
                layers.append(nn.Dropout(dropout))
        self.body = nn.Sequential(*layers)
        self.output = nn.Linear(widths[-1], 1)

    def forward(self, drugs: torch.Tensor, proteins: torch.Tensor, pair_drug: torch.Tensor | None = None,
                pair_protein: torch.Tensor | None = None) -> torch.Tensor:
        """Encodings (n_drugs, drug width), (n_proteins, protein width), pair indices (or row i with row i) -> (n_pairs,)."""
        first = self.body[0]
        drug_weight, protein_weight = first.weight.split(self.widths, dim=1)
        drugs, proteins = drugs @ drug_weight.T, proteins @ protein_weight.T + first.bias  # (n, hidden[0]) each
        if pair_drug is not None:
            drugs, proteins = drugs[pair_drug], proteins[pair_protein]
        return self.output(self.body[1:](drugs + proteins)).squeeze(1)  # (n_pairs,)


@NETWORKS.register(
    "deepdta",
    modality="affinity",
    description="DeepDTA: CNNs over SMILES characters and amino acids, dense head over each (drug, protein) pair.",
    drug_vocabulary=SMILES_VOCABULARY_SIZE, protein_vocabulary=PROTEIN_VOCABULARY_SIZE, embedding_dim=128,
    filters=[32, 64, 96], drug_kernels=[4, 6, 8], protein_kernels=[4, 8, 12], hidden=[1024, 1024, 512], dropout=0.1,
)
class DeepDTA(nn.Module):
    """DeepDTA (Öztürk et al., Bioinformatics 2018): two CNN encoders and a dense head.

    Args:
        drug_vocabulary / protein_vocabulary: code counts with padding (SMILES characters, amino acids).
        embedding_dim: embedding width of both encoders.
        filters: channels of the three convolutions of each encoder.
        drug_kernels / protein_kernels: kernel sizes of each encoder's convolutions.
        hidden: widths of the dense layers of the head.
        dropout: dropout after every dense layer but the last.
    """

    def __init__(self, drug_vocabulary: int = SMILES_VOCABULARY_SIZE, protein_vocabulary: int = PROTEIN_VOCABULARY_SIZE,
                 embedding_dim: int = 128, filters=(32, 64, 96), drug_kernels=(4, 6, 8), protein_kernels=(4, 8, 12),
                 hidden=(1024, 1024, 512), dropout: float = 0.1):
        super().__init__()
        self.drug_encoder = SequenceCNN(drug_vocabulary, embedding_dim, filters, drug_kernels)
        self.protein_encoder = SequenceCNN(protein_vocabulary, embedding_dim, filters, protein_kernels, chunk_size=8)
        self.head = PairHead(self.drug_encoder.width, self.protein_encoder.width, hidden, dropout)
        self.n_outputs = 1

    def combine(self, drugs: torch.Tensor, proteins: torch.Tensor) -> torch.Tensor:
        """Encodings (n_pairs, drug width) and (n_pairs, protein width) -> affinities (n_pairs,)."""
        return self.head(drugs, proteins)

    def forward(self, drug: torch.Tensor, protein: torch.Tensor, pair_drug: torch.Tensor | None = None,
                pair_protein: torch.Tensor | None = None) -> torch.Tensor:
        """Codes (n_drugs, Ld) and (n_proteins, Lp), pair indices (n_pairs,) or None (row i with row i) -> (n_pairs,)."""
        drugs, proteins = self.drug_encoder(drug), self.protein_encoder(protein)  # (n, width) each
        return self.head(drugs, proteins, pair_drug, pair_protein)


class AffinityModel(nn.Module):
    """Batch dict in (see the module docstring), ``{"logits", "loss"?}`` out, for any affinity network.

    The network predicts standardised affinities; the loss (MSE) is on standardised targets over the finite ones;
    ``logits`` are affinities in the targets' units, shape (n_pairs, 1).

    Args:
        network: maps (drug, protein, pair_drug, pair_protein) to (n_pairs,) (e.g. ``NETWORKS.create("deepdta")``).
        target_mean / target_std: of the training affinities (buffers saved with the weights).

    Examples:
        >>> import torch
        >>> from medai.models import NETWORKS
        >>> network = NETWORKS.create("deepdta", embedding_dim=8, filters=(4, 4, 4), hidden=(16, 8))
        >>> model = AffinityModel(network, target_mean=5.5, target_std=0.9)
        >>> batch = {"drug": torch.randint(1, 90, (3, 20)), "protein": torch.randint(1, 25, (3, 50)),
        ...          "label": torch.tensor([5.0, 7.2, float("nan")])}
        >>> output = model(batch)
        >>> output["logits"].shape, output["loss"].dim()
        (torch.Size([3, 1]), 0)
    """

    def __init__(self, network: nn.Module, target_mean: float = 0.0, target_std: float = 1.0):
        super().__init__()
        if not (torch.isfinite(torch.tensor([target_mean, target_std])).all() and target_std > 0):
            raise InvalidInputError(f"'target_mean' must be finite and 'target_std' > 0; got {target_mean!r} and "
                                    f"{target_std!r}.")
        self.network = network
        self.register_buffer("target_mean", torch.tensor(float(target_mean)))
        self.register_buffer("target_std", torch.tensor(float(target_std)))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        drug, protein, pair_drug, pair_protein = pair_layout(batch)
        raw = self.network(drug, protein, pair_drug, pair_protein)  # (n_pairs,) standardised
        output = {"logits": (raw * self.target_std + self.target_mean)[:, None]}  # (n_pairs, 1) in original units
        if "label" in batch:
            output["loss"] = self._loss(raw, batch["label"])
        return output

    def _loss(self, raw: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if targets.numel() != raw.numel():
            raise InvalidInputError(f"Affinity targets must have shape ({len(raw)},); got {tuple(targets.shape)}.")
        targets = targets.reshape(raw.shape).to(raw.dtype)
        observed = torch.isfinite(targets)
        scaled = torch.where(observed, (targets - self.target_mean) / self.target_std, 0.0)
        error = torch.where(observed, raw - scaled, 0.0)  # (n_pairs,), 0 where unmeasured
        return error.square().sum() / observed.sum().clamp_min(1)


def pair_layout(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """(drug codes, protein codes, pair_drug, pair_protein) of a batch, distinct rows only when no indices are given."""
    for key in ("drug", "protein"):
        if key not in batch or batch[key].dim() != 2:
            got = tuple(batch[key].shape) if key in batch else "nothing"
            raise InvalidInputError(f"An affinity batch needs {key!r} codes of shape (n, length); got {got}.")
    if "pair_drug" in batch:
        return batch["drug"], batch["protein"], batch["pair_drug"], batch["pair_protein"]
    if len(batch["drug"]) != len(batch["protein"]):
        raise InvalidInputError(f"Without pair indices, 'drug' and 'protein' need one row per pair; got "
                                f"{len(batch['drug'])} and {len(batch['protein'])} rows.")
    drug, pair_drug = torch.unique(batch["drug"], dim=0, return_inverse=True)
    protein, pair_protein = torch.unique(batch["protein"], dim=0, return_inverse=True)
    return drug, protein, pair_drug, pair_protein
