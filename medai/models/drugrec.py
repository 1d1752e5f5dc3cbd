"""Medication recommendation from a patient's visits: a sequential deep recommender and two torch baselines.

Every model reads the same batch dict (built by ``medai.tasks.drugrec_data``), with codes as indices padded with 0::

    diagnoses    int64 (batch, visits, max codes)   ICD-9 diagnoses of each visit up to the one to recommend for
    procedures   int64 (batch, visits, max codes)   ICD-9 procedures of those visits
    medications  int64 (batch, visits, max codes)   the classes given at the *previous* visit (row 0 is empty)
    lengths      int64 (batch,)                     visits of each history (the last one is the current visit)
    label        float (batch, classes)             optional: the classes given at the current visit

and returns ``{"logits": (batch, classes), "loss"?}`` (one independent logit per ATC level-3 class).

``DrugRecommender`` follows GAMENet/SafeDrug: code embeddings summed per visit, a GRU over visits, a multi-label
output (plus, optionally, a linear "wide" path from the current visit's codes, which small cohorts need); its loss mixes binary cross-entropy with a multi-label margin loss and, SafeDrug-style, adds a penalty on the
expected number of interacting pairs whenever the batch's DDI rate exceeds a target (``ddi_target``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medai.models.registry import NETWORKS


def visit_sets(codes: torch.Tensor, size: int) -> torch.Tensor:
    """Multi-hot sets of size ``size`` from padded indices of shape (..., max codes); index 0 (padding) is dropped."""
    hot = torch.zeros(*codes.shape[:-1], size + 1, device=codes.device)
    hot.scatter_(-1, codes, 1.0)
    return hot[..., 1:]  # (..., size)


def current_visit(codes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The codes of each history's last visit: (batch, visits, max codes) -> (batch, max codes)."""
    return codes[torch.arange(len(codes), device=codes.device), lengths - 1]


@NETWORKS.register("drug_recommender", modality="visits", description="GRU over visits of ICD-9 codes, DDI-aware multi-label output")
class DrugRecommender(nn.Module):
    """Sequential medication recommender with a DDI-aware loss.

    Args:
        n_diagnoses, n_procedures, n_medications: vocabulary sizes (padding excluded); n_medications is also the
            number of output classes.
        embedding: code embedding width.
        hidden: GRU width.
        dropout: dropout on visit vectors and on the output layer's input.
        use_medications: feed the previous visit's classes into each visit vector.
        wide: add a linear path from the current visit's codes to the logits (wide and deep).
        code_dropout: share of codes removed at random from each training batch.
        margin_weight: share of the multi-label margin loss beside binary cross-entropy (GAMENet 0.1, SafeDrug 0.05).
        ddi_target: DDI rate above which the penalty acts (SafeDrug's controllable target).
        ddi_weight: scale of the penalty (expected interacting pairs per visit).
        ddi_kp: SafeDrug's ``kp``: how fast the penalty takes over as the batch DDI rate exceeds the target.
    """

    def __init__(self, n_diagnoses: int, n_procedures: int, n_medications: int, embedding: int = 64, hidden: int = 64,
                 dropout: float = 0.3, use_medications: bool = True, wide: bool = True, code_dropout: float = 0.0, margin_weight: float = 0.05,
                 ddi_target: float = 0.06, ddi_weight: float = 0.05, ddi_kp: float = 0.05):  # fmt: skip
        super().__init__()
        self.n_medications, self.use_medications, self.code_dropout = n_medications, use_medications, code_dropout
        self.margin_weight, self.ddi_target, self.ddi_weight, self.ddi_kp = margin_weight, ddi_target, ddi_weight, ddi_kp
        kinds = {"diagnoses": n_diagnoses, "procedures": n_procedures, **({"medications": n_medications} if use_medications else {})}
        self.embeddings = nn.ModuleDict({k: nn.EmbeddingBag(n + 1, embedding, mode="sum", padding_idx=0) for k, n in kinds.items()})
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(embedding * len(kinds), hidden, batch_first=True)
        self.output = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden + embedding * len(kinds), n_medications))
        self.register_buffer("ddi", torch.zeros(n_medications, n_medications))  # aligned 0/1 interaction matrix
        # wide part: each code of the current visit adds its own logit to each class (a linear model on the codes)
        self.wide = nn.ModuleDict({k: nn.EmbeddingBag(n + 1, n_medications, mode="sum", padding_idx=0)
                                   for k, n in kinds.items()}) if wide else None  # fmt: skip
        if wide:
            for bag in self.wide.values():
                nn.init.zeros_(bag.weight)

    def visit_vectors(self, batch: dict) -> torch.Tensor:
        """Summed code embeddings of every visit, (batch, visits, kinds * embedding)."""
        parts = []
        for kind, bag in self.embeddings.items():
            codes = batch[kind]  # (batch, visits, max codes)
            if codes.shape[-1] == 0:
                parts.append(torch.zeros(*codes.shape[:2], bag.embedding_dim, device=codes.device))
                continue
            parts.append(bag(codes.reshape(-1, codes.shape[-1])).reshape(*codes.shape[:2], -1))
        return torch.cat(parts, dim=-1)

    def forward(self, batch: dict) -> dict:
        if self.training and self.code_dropout > 0:  # drop whole codes at random: the set-input analogue of dropout
            batch = {k: v * (torch.rand(v.shape, device=v.device) >= self.code_dropout) if k in self.embeddings else v
                     for k, v in batch.items()}  # fmt: skip
        vectors = self.dropout(self.visit_vectors(batch))  # (batch, visits, kinds * embedding)
        lengths = batch["lengths"].long()
        states, _ = self.gru(vectors)  # (batch, visits, hidden); causal, so padding after a history changes nothing
        rows = torch.arange(len(lengths), device=lengths.device)
        last = torch.cat([states[rows, lengths - 1], vectors[rows, lengths - 1]], dim=-1)
        logits = self.output(last)  # (batch, classes)
        if self.wide is not None:
            for kind, bag in self.wide.items():
                current = batch[kind][rows, lengths - 1]  # (batch, max codes)
                if current.shape[-1]:
                    logits = logits + bag(current)
        out = {"logits": logits}
        if "label" in batch:
            out["loss"] = self.loss(logits, batch["label"].float())
        return out

    def loss(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """(1 - m) BCE + m margin, blended SafeDrug-style with the DDI penalty while the batch exceeds ``ddi_target``."""
        bce = F.binary_cross_entropy_with_logits(logits, label)
        margin = F.multilabel_margin_loss(logits, margin_targets(label))
        accuracy = (1 - self.margin_weight) * bce + self.margin_weight * margin
        probabilities = torch.sigmoid(logits)
        penalty = expected_interactions(probabilities, self.ddi).mean()
        with torch.no_grad():
            chosen = (probabilities > 0.5).float()
            interacting = expected_interactions(chosen, self.ddi).sum()
            size = chosen.sum(1)
            pairs = (size * (size - 1) / 2).sum()
            rate = float(interacting / pairs) if pairs > 0 else 0.0
        if rate <= self.ddi_target:
            return accuracy + 0.0 * penalty  # keeps every parameter in the graph
        beta = max(0.0, 1.0 + (self.ddi_target - rate) / self.ddi_kp)
        return beta * accuracy + (1 - beta) * self.ddi_weight * penalty


def expected_interactions(probabilities: torch.Tensor, ddi: torch.Tensor) -> torch.Tensor:
    """Expected interacting pairs of each row, sum_{i<j} p_i p_j A_ij, for probabilities of shape (batch, classes)."""
    return 0.5 * torch.einsum("bi,ij,bj->b", probabilities, ddi, probabilities)


def margin_targets(label: torch.Tensor) -> torch.Tensor:
    """Positive class indices first, then -1, as ``multilabel_margin_loss`` wants: (batch, classes) int64."""
    classes = torch.arange(label.shape[1], device=label.device).expand_as(label)
    order = torch.argsort((label <= 0.5).int(), dim=1, stable=True)
    ranked = torch.gather(classes, 1, order)
    count = (label > 0.5).sum(1, keepdim=True)
    return torch.where(torch.arange(label.shape[1], device=label.device) < count, ranked, torch.full_like(ranked, -1))


class MostFrequentDrugs(nn.Module):
    """Baseline: every visit gets the training frequency of each class as its probability (no inputs read)."""

    def __init__(self, n_medications: int):
        super().__init__()
        self.register_buffer("frequency", torch.zeros(n_medications))

    def forward(self, batch: dict) -> dict:
        probabilities = self.frequency.clamp(1e-6, 1 - 1e-6).expand(len(batch["lengths"]), -1)
        return {"logits": torch.logit(probabilities)}  # (batch, classes)


class NearestNeighbourDrugs(nn.Module):
    """Baseline: the classes given at the ``k`` training visits whose diagnosis sets are most Jaccard-similar.

    Probabilities are the similarity-weighted share of neighbours given each class. The training visits' diagnosis
    and medication sets are buffers, so they are saved in the bundle (code sets only, no identifiers or dates).
    """

    def __init__(self, n_diagnoses: int, n_medications: int, n_visits: int, k: int = 5):
        super().__init__()
        self.n_diagnoses, self.k = n_diagnoses, k
        self.register_buffer("diagnoses", torch.zeros(n_visits, n_diagnoses, dtype=torch.uint8))
        self.register_buffer("medications", torch.zeros(n_visits, n_medications, dtype=torch.uint8))

    def forward(self, batch: dict) -> dict:
        query = visit_sets(current_visit(batch["diagnoses"], batch["lengths"].long()), self.n_diagnoses)  # (batch, codes)
        reference = self.diagnoses.float()  # (visits, codes)
        overlap = query @ reference.T  # (batch, visits)
        union = query.sum(1, keepdim=True) + reference.sum(1) - overlap
        similarity = torch.where(union > 0, overlap / union.clamp(min=1), torch.zeros_like(overlap))
        top, index = similarity.topk(min(self.k, len(reference)), dim=1)  # (batch, k)
        weights = top + 1e-6
        votes = (self.medications.float()[index] * weights[..., None]).sum(1) / weights.sum(1, keepdim=True)
        return {"logits": torch.logit(votes.clamp(1e-4, 1 - 1e-4))}  # (batch, classes)


BASELINES = {"most_frequent": MostFrequentDrugs, "nearest_neighbour": NearestNeighbourDrugs}
