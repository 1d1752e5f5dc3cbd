"""Reference models beside the tabular MLP on the same 10 folds: logistic regression with C fixed at 1 (the bench's
baseline), with C chosen per training fold by inner 5-fold AUROC (LogisticRegressionCV, nested), and a random
forest. A diagnostic for issue 4's Cleveland floor, not a default: it asks whether a model chosen without the held-out
fold reaches the floor, and whether the same model also wins on the development tables (where defaults are chosen).

    OMP_NUM_THREADS=1 python bench/tabular_reference_models.py --tables heart-hungarian,heart-va,ilpd,heart-cleveland
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from medai.tasks.tabular_classification import TabularSettings, load, one_hot
from medai.transforms.tabular import TabularPreprocessor

C_GRID = np.logspace(-3, 2, 11)


def models(seed: int) -> dict:
    return {
        "logistic_regression_C1": LogisticRegression(C=1.0, max_iter=5000),
        "logistic_regression_nested_C": LogisticRegressionCV(Cs=C_GRID, cv=5, scoring="roc_auc", max_iter=5000),
        "random_forest_500": RandomForestClassifier(500, min_samples_leaf=3, random_state=seed),
    }


def run_table(name: str, folds: int = 10, seed: int = 0) -> dict:
    table = load(name, TabularSettings())
    scores = {key: [] for key in models(seed)}
    picked = []
    for rest, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(table.ids, table.labels):
        train, test = table.subset(rest), table.subset(held)
        preprocessor = TabularPreprocessor(train.numeric, train.categorical).fit(train)
        n, cardinalities = preprocessor.n_numeric_, list(preprocessor.cardinalities_)
        x_train = one_hot(preprocessor.transform(train), n, cardinalities)
        x_test = one_hot(preprocessor.transform(test), n, cardinalities)
        for key, model in models(seed).items():
            model.fit(x_train, train.labels)
            scores[key].append(roc_auc_score(test.labels, model.predict_proba(x_test)[:, 1]))
            if key == "logistic_regression_nested_C":
                picked.append(float(model.C_[0]))
    return {key: float(np.mean(values)) for key, values in scores.items()} | {"nested_C_picked": picked}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", default="heart-hungarian,heart-va,ilpd,heart-cleveland")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)  # LogisticRegressionCV's announced API changes
    report = {"benchmark": "tabular reference models (10-fold stratified, seed 0, as bench/tabular.py)", "tables": {}}
    for name in args.tables.split(","):
        report["tables"][name] = run_table(name)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
