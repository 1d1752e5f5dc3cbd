"""Fitted random forests as flat arrays: saved in safetensors like every network, predicted without scikit-learn.

scikit-learn fits the forests (:func:`medai.tasks.molecule_fit.fit_forest`); :meth:`TreeForests.from_sklearn`
then keeps, per task, every tree's nodes in five flat arrays (children, split feature, threshold, leaf output) and
the index of each tree's root. The module holds them as buffers, so a bundle stores them in ``model.safetensors``
with its checksum, and loading needs only the node counts in config.json: no pickle, and no per-object schema
(skops wrote one JSON entry per tree attribute, which for SIDER's 27 tasks x 500 trees took minutes).

Prediction walks every tree at once, one level per step (``x[feature] <= threshold`` goes left, as in
scikit-learn, on the same float32 inputs and float64 thresholds), so per-tree outputs equal scikit-learn's exactly.

Examples:
    >>> import numpy as np
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> x = np.array([[0.0], [1.0], [2.0], [3.0]], dtype=np.float32)
    >>> forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(x, [0, 0, 1, 1])
    >>> model = TreeForests.from_sklearn([forest], ["classification"])
    >>> bool((model.tree_outputs(x, 0) == np.stack([t.predict_proba(x)[:, 1] for t in forest.estimators_])).all())
    True
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

ARRAYS = ("left", "right", "feature", "threshold", "value", "roots")


class TreeForests(nn.Module):
    """One forest per task. ``tree_outputs(x, j)``: every tree's output for task j (probability of class 1, or value).

    Args:
        node_counts: nodes of each task's forest (all its trees together).
        tree_counts: trees of each task's forest.
    """

    def __init__(self, node_counts: list[int], tree_counts: list[int]):
        super().__init__()
        self.node_counts, self.tree_counts = list(node_counts), list(tree_counts)
        for j, (nodes, trees) in enumerate(zip(self.node_counts, self.tree_counts)):
            for name, dtype in (("left", torch.int32), ("right", torch.int32), ("feature", torch.int32),
                                ("threshold", torch.float64), ("value", torch.float64)):
                self.register_buffer(f"{name}_{j}", torch.zeros(nodes, dtype=dtype))
            self.register_buffer(f"roots_{j}", torch.zeros(trees, dtype=torch.int64))
        self._cache: dict[int, tuple] = {}

    def config(self) -> dict:
        """What config.json keeps to rebuild the module before its buffers are loaded."""
        return {"nodes": self.node_counts, "trees": self.tree_counts}

    @classmethod
    def from_sklearn(cls, forests: list, task_types) -> TreeForests:
        """Flatten fitted ``RandomForestClassifier`` / ``RandomForestRegressor`` objects, one per task."""
        flat = [_flatten(forest, kind) for forest, kind in zip(forests, task_types)]
        model = cls([len(arrays["value"]) for arrays in flat], [len(arrays["roots"]) for arrays in flat])
        for j, arrays in enumerate(flat):
            for name in ARRAYS:
                getattr(model, f"{name}_{j}").copy_(torch.from_numpy(arrays[name]))
        return model.eval()

    def _arrays(self, task: int) -> tuple:
        if task not in self._cache:  # numpy views of the buffers (refreshed after load_state_dict)
            self._cache[task] = tuple(getattr(self, f"{name}_{task}").numpy() for name in ARRAYS)
        return self._cache[task]

    def _load_from_state_dict(self, *args, **kwargs):
        self._cache = {}
        super()._load_from_state_dict(*args, **kwargs)

    def tree_outputs(self, x: np.ndarray, task: int) -> np.ndarray:
        """(trees, n) outputs of task ``task``'s trees for the rows of ``x`` (float32 features)."""
        left, right, feature, threshold, value, roots = self._arrays(task)
        x = np.asarray(x, dtype=np.float32)
        n = len(x)
        node = np.repeat(roots, n)  # (tree, row) pairs, tree-major
        row = np.tile(np.arange(n), len(roots))
        walking = np.arange(len(node))
        for _ in range(len(feature) + 1):  # no path is longer than the nodes; more steps mean a cycle
            at = node[walking]
            inner = feature[at] >= 0
            walking, at = walking[inner], at[inner]
            if not len(walking):
                return value[node].reshape(len(roots), n)
            go_left = x[row[walking], feature[at]] <= threshold[at]
            node[walking] = np.where(go_left, left[at], right[at])
        raise ValueError(f"The arrays of forest {task} do not describe trees (a path never reaches a leaf).")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over trees, (n, n_tasks), for a tensor of features."""
        data = x.detach().cpu().numpy()
        return torch.from_numpy(np.stack([self.tree_outputs(data, j).mean(axis=0)
                                          for j in range(len(self.node_counts))], axis=1))


def _flatten(forest, kind: str) -> dict[str, np.ndarray]:
    """One forest's trees as flat arrays; children point into the flat arrays, -1 at leaves."""
    parts: dict[str, list] = {name: [] for name in ARRAYS}
    offset = 0
    positive = list(forest.classes_).index(1) if kind == "classification" and 1 in forest.classes_ else None
    for estimator in forest.estimators_:
        tree = estimator.tree_
        leaf = tree.children_left < 0
        parts["left"].append(np.where(leaf, -1, tree.children_left + offset))
        parts["right"].append(np.where(leaf, -1, tree.children_right + offset))
        parts["feature"].append(np.where(leaf, -1, tree.feature))
        parts["threshold"].append(tree.threshold)
        if kind == "classification":
            parts["value"].append(_class_fraction(tree.value[:, 0, :], positive))
        else:
            parts["value"].append(tree.value[:, 0, 0])
        parts["roots"].append(offset)
        offset += tree.node_count
    out = {name: np.concatenate(values) if name != "roots" else np.asarray(values)
           for name, values in parts.items()}
    for name, dtype in (("left", np.int32), ("right", np.int32), ("feature", np.int32), ("threshold", np.float64),
                        ("value", np.float64), ("roots", np.int64)):
        out[name] = out[name].astype(dtype)
    return out


def _class_fraction(values: np.ndarray, positive: int | None) -> np.ndarray:
    """Each node's probability of the positive class as scikit-learn's ``predict_proba`` gives it at a leaf."""
    if positive is None:
        return np.zeros(len(values))
    total = values.sum(axis=1)
    return values[:, positive] / np.where(total == 0, 1.0, total)
