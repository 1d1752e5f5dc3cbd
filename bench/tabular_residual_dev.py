"""Development check: tabular MLP members learning a residual on a frozen logistic regression.

Each cross-fitted member k gets a fixed additive logit: a logistic regression (C=1, one-hot design) fitted on member
k's own training rows only, so its early-stopping fold stays unseen. Otherwise the default recipe, on the same 10
folds as ``bench/tabular.py``; prints the mean held-out AUROC. For development tables only (not the floored ones).

    OMP_NUM_THREADS=1 python bench/tabular_residual_dev.py heart-hungarian
"""

import json
import sys

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from torch import nn

from medai.data.splits import split_indices
from medai.engine.trainer import Trainer, TrainerConfig
from medai.tasks import tabular_classification as T
from medai.tasks.common import cross_fit_folds, fit_cross_fitted
from medai.transforms.tabular import TabularPreprocessor


class Offset(nn.Module):
    def __init__(self, inner, coef, intercept, n, cards):
        super().__init__()
        self.inner, self.n, self.cards = inner, n, cards
        self.register_buffer("coef", torch.tensor(coef, dtype=torch.float32))
        self.register_buffer("intercept", torch.tensor(intercept, dtype=torch.float32))
    def forward(self, x):
        blocks = [x[:, : 2 * self.n]]
        for i, size in enumerate(self.cards):
            codes = x[:, 2 * self.n + i].round().long().clamp(0, size - 1)
            blocks.append(torch.nn.functional.one_hot(codes, size).float())
        offset = torch.cat(blocks, 1) @ self.coef + self.intercept
        logits = self.inner(x)
        return logits + torch.stack([torch.zeros_like(offset), offset], 1)


def main(name: str) -> None:
    s = T.TabularSettings(progress=False)
    table = T.load(name, s)
    aurocs = []
    for fold, (rest, held) in enumerate(StratifiedKFold(10, shuffle=True, random_state=0).split(table.ids, table.labels)):
        inner = split_indices(table.labels[rest], None, (0.80, 0.15, 0.05), fold)
        train = table.subset(rest[np.concatenate([inner["train"], inner["test"]])])
        val = table.subset(rest[inner["val"]])
        pre = TabularPreprocessor(train.numeric, train.categorical).fit(train)
        xt, xv, xh = pre.transform(train), pre.transform(val), pre.transform(table.subset(held))
        n, cards = pre.n_numeric_, list(pre.cardinalities_)
        labels = np.concatenate([train.labels, val.labels])
        config = {"network": "ensemble", "input_width": xt.shape[1], "class_weight": None,
                  "network_kwargs": {"member": "tabular_mlp", "size": 5, "n_numeric": n, "cardinalities": cards,
                                     "num_classes": 2, "dropout": s.dropout, "wide": s.wide}}
        torch.manual_seed(0)
        model = T.build_model(config)
        pool = T._as_dataset(np.concatenate([xt, xv]), labels, np.concatenate([train.ids, val.ids]), train.label_names)
        folds = cross_fit_folds(labels, 5, 0)
        design = T.one_hot(pool.inputs, n, cards)
        for k, (fit_rows, _) in enumerate(folds):
            lr = LogisticRegression(C=1.0, max_iter=5000).fit(design[fit_rows], labels[fit_rows])
            model.network.members[k] = Offset(model.network.members[k], lr.coef_[0], lr.intercept_[0], n, cards)
        fit_cross_fitted(model, pool, folds, s.trainer_config())
        logits = Trainer(TrainerConfig(progress=False)).predict(model, T._as_dataset(xh, None, np.arange(len(xh)).astype(str), train.label_names))
        aurocs.append(roc_auc_score(table.labels[held], logits[:, 1] - logits[:, 0]))
        print(name, fold, aurocs[-1], flush=True)
    print(json.dumps({"table": name, "auroc_mean": float(np.mean(aurocs))}))


if __name__ == "__main__":
    main(sys.argv[1])
