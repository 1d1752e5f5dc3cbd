"""``medai`` commands. Each is a few lines over a library call; see ``medai COMMAND --help``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from medai.cli.errors import handle_errors

app = typer.Typer(
    name="medai",
    help="Train, evaluate, explain and serve deep-learning models on medical data.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

TaskOption = Annotated[str, typer.Option("--task", help="What to learn: image-classification, tabular-classification.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of a table.")]


def _print_json(document) -> None:
    typer.echo(json.dumps(document, indent=2, allow_nan=True))


@app.command()
@handle_errors
def train(
    task: TaskOption,
    data: Annotated[str, typer.Option(help="Data: a MedMNIST .npz or name, a folder of images, a CSV/Parquet/ARFF table.")],
    out: Annotated[Path, typer.Option(help="Folder to write the model bundle to.")],
    target: Annotated[Optional[str], typer.Option(help="Tables: the column to predict.")] = None,
    id_column: Annotated[Optional[str], typer.Option(help="Tables: column of record ids (not a feature).")] = None,
    site_column: Annotated[Optional[str], typer.Option(help="Tables: column naming the hospital (not a feature).")] = None,
    model: Annotated[Optional[str], typer.Option(help="Network from the registry (see `medai models`).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Maximum epochs; the best on validation is kept.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed (same seed, same result).")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or cuda:N.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Batch size.")] = None,
    learning_rate: Annotated[Optional[float], typer.Option("--lr", help="Peak learning rate.")] = None,
    patience: Annotated[Optional[int], typer.Option(help="Stop after N epochs without improvement.")] = None,
    image_size: Annotated[Optional[int], typer.Option(help="Resize folder/DICOM images to this size.")] = None,
    class_weight: Annotated[Optional[str], typer.Option(help="none or balanced.")] = None,
    ensemble: Annotated[Optional[int], typer.Option(help="Members of a deep ensemble (default: by data size).")] = None,
    augment: Annotated[Optional[bool], typer.Option("--augment/--no-augment", help="Training augmentation.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    as_json: JsonFlag = False,
):
    """Train a model and save it as a bundle folder (weights, config, metrics, model card, plots)."""
    from medai import api

    given = dict(target=target, id_column=id_column, site_column=site_column, model=model, epochs=epochs, seed=seed, device=device, batch_size=batch_size, learning_rate=learning_rate,
                 patience=patience, image_size=image_size, class_weight=class_weight, augment=augment,
                 ensemble=ensemble)  # fmt: skip
    settings = {k: v for k, v in given.items() if v is not None}
    bundle = api.train(task, data, out, progress=not quiet, **settings)
    if not bundle.metrics:  # a non-zero rank under torchrun: rank 0 reports
        return
    summary = {"bundle": str(bundle.path), **{s: _headline(bundle.metrics.get(s)) for s in ("val", "test") if s in bundle.metrics}}
    fit = bundle.metrics.get("fit", {})
    summary["best_epochs"] = fit.get("best_epochs", [])
    summary["train_seconds"] = round(fit.get("train_seconds", 0.0), 1)
    if as_json:
        _print_json(summary)
    else:
        epochs = ", ".join(str(e + 1) for e in summary["best_epochs"]) or "n/a"
        typer.echo(f"saved {bundle.path}  (best epochs {epochs}; {summary['train_seconds']} s of training)")
        for split in ("val", "test"):
            if split in summary:
                typer.echo(f"  {split:5s} " + "  ".join(f"{k} {v:.3f}" for k, v in summary[split].items() if v is not None))


def _headline(metrics: dict | None) -> dict:
    keys = ("auroc", "auprc", "accuracy", "balanced_accuracy", "f1", "brier", "ece")
    return {k: metrics.get(k) for k in keys} if metrics else {}


@app.command()
@handle_errors
def evaluate(
    bundle: Annotated[Path, typer.Argument(help="A model bundle folder.")],
    data: Annotated[str, typer.Option(help="Data in the format the model was trained on.")],
    split: Annotated[str, typer.Option(help="test, val, train or all.")] = "test",
    plots: Annotated[Optional[Path], typer.Option(help="Also write ROC/PR/calibration/confusion plots here.")] = None,
    as_json: JsonFlag = False,
):
    """Evaluate a bundle on one split of a dataset (``--split all`` for external data)."""
    from medai import api

    metrics = api.evaluate(bundle, data, split, plots_dir=plots)
    if as_json:
        _print_json(metrics)
        return
    for key, value in metrics.items():
        typer.echo(f"{key:22s} {value:.4f}" if isinstance(value, float) else f"{key:22s} {value}")


@app.command()
@handle_errors
def predict(
    bundle: Annotated[Path, typer.Argument(help="A model bundle folder.")],
    inputs: Annotated[Optional[list[Path]], typer.Argument(help="Image files (PNG, JPEG, DICOM), or an .npz / folder.")] = None,
    data: Annotated[Optional[Path], typer.Option(help="A table (CSV/Parquet/ARFF) or dataset to predict every record of.")] = None,
    split: Annotated[Optional[str], typer.Option(help="For an .npz, folder or table: which split (default: test for images, all for tables).")] = None,
    as_json: JsonFlag = False,
):
    """Predict the label and class probabilities of each input."""
    from medai import api
    from medai.cli.errors import fail

    items = [*(inputs or []), *([data] if data else [])]
    if not items:
        raise fail("give the inputs to predict: image files, or --data FILE")
    results = api.predict(bundle, items, **({"split": split} if split else {}))
    if as_json:
        _print_json(results)
        return
    for result in results:
        probabilities = "  ".join(f"{k}={v:.3f}" for k, v in result["probabilities"].items())
        typer.echo(f"{result['input']}: {result['label']}  ({probabilities})")


@app.command()
@handle_errors
def explain(
    bundle: Annotated[Path, typer.Argument(help="A model bundle folder.")],
    out: Annotated[Path, typer.Option(help="PNG file to write the picture to.")],
    item: Annotated[Optional[Path], typer.Argument(metavar="[INPUT]", help="An image file, or an .npz / folder (with --index).")] = None,
    data: Annotated[Optional[Path], typer.Option(help="A table (with --row) instead of INPUT.")] = None,
    target: Annotated[Optional[str], typer.Option(help="Class to explain (default: the predicted one).")] = None,
    index: Annotated[int, typer.Option("--index", "--row", help="Record (row) index within the input or --split.")] = 0,
    split: Annotated[Optional[str], typer.Option(help="Split of an .npz / folder / table (default: test for images, all for tables).")] = None,
    as_json: JsonFlag = False,
):
    """Explain one prediction: Grad-CAM heat map for images, per-feature contributions for tables."""
    from medai import api
    from medai.cli.errors import fail

    source = data or item
    if source is None:
        raise fail("give the record to explain: an image file, or --data FILE --row N")
    result = api.explain(bundle, source, out, target=target, index=index, **({"split": split} if split else {}))
    if as_json:
        _print_json(result)
    else:
        typer.echo(f"{result['input']}: {result['label']}; explanation of '{result['explained_class']}' written to {out}")


@app.command()
@handle_errors
def datasets(as_json: JsonFlag = False):
    """List the datasets medai knows and where it finds them (MEDAI_DATA_DIR, cache, or download)."""
    from medai.data.sources.medmnist import list_known
    from medai.data.sources.tabular import list_tables

    known = list_known() + list_tables()
    if as_json:
        _print_json(known)
        return
    for entry in known:
        where = entry.get("local_path") or f"not found locally; downloadable from {entry.get('url')}"
        typer.echo(f"{entry['name']:18s} {where}")


@app.command()
@handle_errors
def models(as_json: JsonFlag = False):
    """List the networks in the model registry."""
    from medai.models import NETWORKS

    entries = [{"name": n, "modality": NETWORKS.get(n).modality, "description": NETWORKS.get(n).description} for n in NETWORKS.names()]
    if as_json:
        _print_json(entries)
        return
    for entry in entries:
        typer.echo(f"{entry['name']:14s} [{entry['modality']}] {entry['description']}")


@app.command()
@handle_errors
def reduce(
    data: Annotated[str, typer.Option(help="Images (MedMNIST .npz/name, folder) or a table (CSV/Parquet/ARFF, known name).")],
    dim: Annotated[int, typer.Option(help="Code dimension.")],
    out: Annotated[Path, typer.Option(help="Codes file: .csv or .parquet (one row per record: id, label, code_1..).")],
    method: Annotated[str, typer.Option(help="autoencoder or pca.")] = "autoencoder",
    plot: Annotated[Optional[Path], typer.Option(help="Scatter plot PNG (default: next to --out).")] = None,
    target: Annotated[Optional[str], typer.Option(help="Tables: label column that colours the plot (not used to fit).")] = None,
    epochs: Annotated[int, typer.Option(help="Autoencoder epochs.")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    as_json: JsonFlag = False,
):
    """Reduce high-dimensional records to DIM learned dimensions (autoencoder) or principal components."""
    from medai.tasks.reduction import run_reduce

    summary = run_reduce(data, dim, out, method=method, plot=plot, target=target, epochs=epochs, seed=seed)
    if as_json:
        _print_json(summary)
    else:
        typer.echo(f"wrote {summary['records']} x {dim} codes to {summary['codes']} and the plot to {summary['plot']}")


@app.command()
@handle_errors
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the bundles and report.html.")] = Path("medai-demo"),
    epochs: Annotated[Optional[int], typer.Option(help="Epochs per model (default: the task's default).")] = None,
    names: Annotated[str, typer.Option("--datasets", help="Comma-separated MedMNIST names.")] = "breastmnist,pneumoniamnist",
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
):
    """Run the whole slice on real data: train, evaluate, explain, and write an HTML report."""
    from medai.demo import run_demo

    report = run_demo(out, [n.strip() for n in names.split(",") if n.strip()], epochs=epochs, progress=not quiet)
    for line in report.messages:
        typer.echo(line)
    if report.html is not None:
        typer.echo(f"report: {report.html}")
    if not report.ran:
        raise typer.Exit(3)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
