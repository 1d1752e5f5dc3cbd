"""Training throughput of chemprop v2 (run with the python of a venv holding chemprop; not imported by medai).

    /path/to/chemprop-venv/bin/python bench/chemprop_speed.py data.csv regression 3

Reads ``smiles,y``; trains chemprop's default MPNN (bond message passing, hidden 300, depth 3, mean aggregation,
one-hidden-layer FFN, batch 50, no extra features) on one CPU thread for the given epochs with featurised graphs
cached, and prints one JSON line with molecules per second of the training loop (validation off).
"""

import csv
import json
import sys
import time

import torch


def main() -> None:
    from chemprop import data, featurizers, models, nn
    from lightning import pytorch as pl

    path, kind, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(1)
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    points = [data.MoleculeDatapoint.from_smi(r["smiles"], [float(r["y"])]) for r in rows]
    dataset = data.MoleculeDataset(points, featurizers.SimpleMoleculeMolGraphFeaturizer())
    dataset.cache = True
    loader = data.build_dataloader(dataset, batch_size=50, num_workers=0, seed=0)
    ffn = nn.RegressionFFN() if kind == "regression" else nn.BinaryClassificationFFN()
    model = models.MPNN(nn.BondMessagePassing(), nn.MeanAggregation(), ffn, batch_norm=False)
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, accelerator="cpu",
                         devices=1, max_epochs=epochs, enable_model_summary=False, limit_val_batches=0)
    start = time.perf_counter()
    trainer.fit(model, loader)
    seconds = time.perf_counter() - start
    print(json.dumps({"chemprop_version": __import__("chemprop").__version__, "molecules": len(points),
                      "epochs": epochs, "seconds": round(seconds, 1),
                      "molecules_per_second": round(len(points) * epochs / seconds, 1)}))


if __name__ == "__main__":
    main()
