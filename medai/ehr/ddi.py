"""The drug-drug interaction (DDI) graph over ATC level-3 classes, and the safety checks built on it.

The graph is the one GAMENet (Shang et al. 2019) and SafeDrug (Yang et al. 2021) use: TWOSIDES interactions mapped to
ATC level-3 classes, staged as ``drugrec_ddi_atc/{gamenet,safedrug}/ddi_A_final.npy`` (a symmetric 0/1 matrix) with
its class list in ``voc_final.json["med_voc"]["idx2word"]`` (see that folder's PROVENANCE.md).

Examples:
    >>> graph = DDIGraph(["A", "B", "C"], [[0, 1, 0], [1, 0, 0], [0, 0, 0]])
    >>> graph.interacting_pairs(["C", "B", "A"])
    [('B', 'A')]
    >>> ddi_rate([{"A", "B", "C"}, {"A", "C"}], graph)  # 1 interacting pair among 3 + 1 pairs
    0.25
    >>> make_interaction_free(["A", "B", "C"], [0.9, 0.8, 0.7], graph)
    ['A', 'C']
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from medai.errors import DataNotFoundError, check_choice
from medai.settings import data_dir

SOURCES = ("gamenet", "safedrug")
FOLDER = "drugrec_ddi_atc"
NAMES_FILE = ("drug_codes", "who_atc_ddd_2021-12-03.csv")


@dataclass(frozen=True)
class DDIGraph:
    """ATC level-3 classes and their symmetric 0/1 interaction matrix.

    Attributes:
        classes: list of n ATC level-3 codes (``"N02B"``).
        matrix: array of shape (n, n), 1 where two classes interact.
    """

    classes: list
    matrix: np.ndarray

    def __post_init__(self):
        matrix = np.asarray(self.matrix, dtype=np.uint8)
        object.__setattr__(self, "matrix", np.maximum(matrix, matrix.T))
        object.__setattr__(self, "_index", {c: i for i, c in enumerate(self.classes)})

    def interacts(self, a: str, b: str) -> bool:
        i, j = self._index.get(a), self._index.get(b)
        return i is not None and j is not None and bool(self.matrix[i, j])

    def interacting_pairs(self, classes: Sequence[str]) -> list[tuple[str, str]]:
        """Every interacting pair among ``classes``, each once, in the order the classes were given."""
        classes = list(dict.fromkeys(classes))
        return [(a, b) for i, a in enumerate(classes) for b in classes[i + 1 :] if self.interacts(a, b)]

    def aligned(self, labels: Sequence[str]) -> np.ndarray:
        """The matrix re-indexed by ``labels`` (classes outside the graph interact with nothing), (k, k) float32."""
        index = np.array([self._index.get(c, -1) for c in labels])
        known = index >= 0
        out = np.zeros((len(labels), len(labels)), np.float32)
        out[np.ix_(known, known)] = self.matrix[np.ix_(index[known], index[known])]
        return out


def load_ddi(source: str = "gamenet", folder: str | Path | None = None) -> DDIGraph:
    """Load a staged DDI graph (``gamenet``: 151 classes, ``safedrug``: 112), located via ``MEDAI_DATA_DIR``.

    Raises:
        DataNotFoundError: the staged files are not there.
    """
    check_choice("source", source, SOURCES)
    base = Path(folder) if folder else (data_dir() or Path("__missing__")) / FOLDER
    return _read_graph(str(base.resolve() / source))


@lru_cache(maxsize=8)
def _read_graph(folder: str) -> DDIGraph:
    matrix_path, vocabulary_path = Path(folder) / "ddi_A_final.npy", Path(folder) / "voc_final.json"
    if not matrix_path.is_file() or not vocabulary_path.is_file():
        raise DataNotFoundError(
            f"The drug-drug interaction matrix was not found at {folder}: stage the '{FOLDER}' folder under "
            "MEDAI_DATA_DIR (it needs ddi_A_final.npy and voc_final.json)."
        )
    words = json.loads(vocabulary_path.read_text())["med_voc"]["idx2word"]
    matrix = np.load(matrix_path, allow_pickle=False)
    keep = [i for i, w in enumerate(words) if _is_atc3(w)]  # GAMENet's first two entries are special tokens
    return DDIGraph([words[i] for i in keep], matrix[np.ix_(keep, keep)])


def _is_atc3(code: str) -> bool:
    return len(code) == 4 and code[0].isalpha() and code[1:3].isdigit() and code[3].isalpha()


def class_names() -> dict[str, str]:
    """ATC code -> WHO name (``{"N02B": "OTHER ANALGESICS AND ANTIPYRETICS"}``); empty when the index is absent."""
    base = data_dir()
    return _read_names(str(base.joinpath(*NAMES_FILE))) if base else {}


@lru_cache(maxsize=4)
def _read_names(path: str) -> dict[str, str]:
    if not Path(path).is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["atc_code"]: row["atc_name"] for row in csv.DictReader(handle)}


def _graph(graph: DDIGraph | None) -> DDIGraph:
    return graph if graph is not None else load_ddi()


def interacting_pairs(classes: Sequence[str], graph: DDIGraph | None = None) -> list[tuple[str, str]]:
    """Every interacting pair among ``classes`` (the staged GAMENet graph unless ``graph`` is given)."""
    return _graph(graph).interacting_pairs(classes)


def pair_counts(sets: Iterable[Iterable[str]], graph: DDIGraph | None = None) -> tuple[int, int]:
    """(interacting pairs, all pairs) summed over the recommended sets."""
    graph = _graph(graph)
    interacting = total = 0
    for drugs in sets:
        drugs = list(dict.fromkeys(drugs))
        total += len(drugs) * (len(drugs) - 1) // 2
        interacting += len(graph.interacting_pairs(drugs))
    return interacting, total


def ddi_rate(sets: Iterable[Iterable[str]], graph: DDIGraph | None = None) -> float:
    """GAMENet/SafeDrug DDI rate: interacting pairs / all pairs, pooled over every set (0.0 when no set has a pair).

    As in ``ddi_rate_score`` of both codebases, pairs are counted over all visits together (a visit with many drugs
    weighs more), not averaged per visit.
    """
    interacting, total = pair_counts(sets, graph)
    return interacting / total if total else 0.0


def make_interaction_free(ranked: Sequence[str], probabilities: Sequence[float], graph: DDIGraph | None = None) -> list[str]:
    """Drop, greedily, the lower-probability member of every interacting pair.

    Classes are visited from the most to the least probable; one is kept only if it interacts with none kept so far.

    Args:
        ranked: the recommended classes.
        probabilities: their probabilities, same length.

    Returns:
        The kept classes, most probable first; no two of them interact.
    """
    graph = _graph(graph)
    order = sorted(range(len(ranked)), key=lambda i: -float(probabilities[i]))
    kept: list[str] = []
    for i in order:
        if not any(graph.interacts(ranked[i], other) for other in kept):
            kept.append(ranked[i])
    return kept
