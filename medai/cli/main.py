"""``medai`` commands. Each is a few lines over a library call; see ``medai COMMAND --help``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from medai.cli.crypto import decrypt as decrypt_command
from medai.cli.crypto import encrypt as encrypt_command
from medai.cli.deid import deid_app
from medai.cli.errors import handle_errors
from medai.cli.screen import screen_command
from medai.tasks import TASKS

app = typer.Typer(
    name="medai",
    help="Train, evaluate, explain and serve deep-learning models on medical data.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

TaskOption = Annotated[str, typer.Option("--task", help=f"What to learn: {', '.join(TASKS)}.")]  # from the registry, never stale
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of a table.")]


def _print_json(document) -> None:
    typer.echo(json.dumps(document, indent=2, allow_nan=True))


@app.command()
@handle_errors
def train(
    task: TaskOption,
    data: Annotated[str, typer.Option(help="Data: a MedMNIST .npz or name, a folder of images, a CSV/Parquet/ARFF table, a MIMIC-III folder.")],
    out: Annotated[Path, typer.Option(help="Folder to write the model bundle to.")],
    target: Annotated[Optional[list[str]], typer.Option(help="Tables: the column to predict. Molecules: a label column; repeat for several (default: all).")] = None,
    smiles_column: Annotated[Optional[str], typer.Option(help="Molecules: the SMILES column (default: found by name).")] = None,
    sequence_column: Annotated[Optional[str], typer.Option(help="Drug-target affinity tables: the protein sequence column (default: found by name).")] = None,
    split: Annotated[Optional[str], typer.Option(help="Molecules: random or scaffold split.")] = None,
    features: Annotated[Optional[str], typer.Option(help="Molecules: extra molecule features, rdkit_2d or none.")] = None,
    id_column: Annotated[Optional[str], typer.Option(help="Tables: column of record ids (not a feature).")] = None,
    site_column: Annotated[Optional[str], typer.Option(help="Tables: column naming the hospital (not a feature).")] = None,
    model: Annotated[Optional[str], typer.Option(help="Network from the registry (see `medai models`) or a baseline (tables: logistic_regression, gradient_boosting; molecules: random_forest; drug recommendation: most_frequent, logistic_regression, nearest_neighbour). Molecules default to auto: the D-MPNN ensemble or the random forest, whichever scores better on validation.")] = None,
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
    decision_threshold: Annotated[Optional[str], typer.Option(help="Images, two classes: predict the second class from this probability, or val-accuracy: the threshold with the best validation accuracy (default: the most probable class).")] = None,
    member_validation: Annotated[Optional[str], typer.Option(help="Images and tables, ensembles: split (every member keeps its best epoch on the validation split) or cross-fit (training and validation data pooled, one stratified fold per member to keep its best epoch on).")] = None,
    data_format: Annotated[Optional[str], typer.Option("--format", help="ICU series: physionet2012 or mimic3 (default: detected from the folder).")] = None,
    dp_epsilon: Annotated[Optional[float], typer.Option(help="Train with differential privacy (Opacus) spending this epsilon.")] = None,
    dp_delta: Annotated[Optional[float], typer.Option(help="DP delta (default: min(1e-5, 1/(10 n_train))).")] = None,
    dp_max_grad_norm: Annotated[float, typer.Option(help="DP: bound on each record's gradient norm.")] = 1.0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    as_json: JsonFlag = False,
):
    """Train a model and save it as a bundle folder (weights, config, metrics, model card, plots)."""
    from medai import api
    from medai.cli.privacy import train_private_or_not

    given = dict(id_column=id_column, site_column=site_column, model=model, epochs=epochs, seed=seed, device=device, batch_size=batch_size, learning_rate=learning_rate,
                 patience=patience, image_size=image_size, class_weight=class_weight, augment=augment,
                 ensemble=ensemble, smiles_column=smiles_column, split=split, features=features, format=data_format,
                 sequence_column=sequence_column, decision_threshold=decision_threshold,
                 member_validation=member_validation)  # fmt: skip
    settings = {k: v for k, v in given.items() if v is not None} | _target_setting(task, target)
    bundle = train_private_or_not(api.train, task, data, out, (dp_epsilon, dp_delta, dp_max_grad_norm), progress=not quiet, **settings)
    if not bundle.metrics:  # a non-zero rank under torchrun: rank 0 reports
        return
    splits = ("val", "out_of_fold", "test")  # out_of_fold: cross-fitted ECG ensembles
    summary = {"bundle": str(bundle.path), **{s: _headline(bundle.metrics.get(s)) for s in splits if s in bundle.metrics}}
    fit = bundle.metrics.get("fit", {})
    summary["best_epochs"] = fit.get("best_epochs", [])
    summary["train_seconds"] = round(fit.get("train_seconds", 0.0), 1)
    if "privacy" in bundle.config:
        summary["privacy"] = {k: bundle.config["privacy"]["dp"][k] for k in ("epsilon", "delta")}
    if as_json:
        _print_json(summary)
    else:
        epochs = ", ".join(str(e + 1) for e in summary["best_epochs"]) or "n/a"
        typer.echo(f"saved {bundle.path}  (best epochs {epochs}; {summary['train_seconds']} s of training)")
        for split in splits:
            if split in summary:
                typer.echo(f"  {split:5s} " + "  ".join(f"{k} {v:.3f}" for k, v in summary[split].items() if v is not None))


def _target_setting(task: str, targets: list[str] | None) -> dict:
    """``--target`` as the task takes it: a list for multi-task learners (``targets``), else one ``target``."""
    from dataclasses import fields

    from medai.cli.errors import fail
    from medai.tasks import get_task

    if not targets:
        return {}
    if "targets" in {f.name for f in fields(get_task(task).Settings)}:
        return {"targets": list(targets)}
    if len(targets) > 1:
        raise fail(f"the task {task} predicts one column; give --target once (got {len(targets)})")
    return {"target": targets[0]}


def _headline(metrics: dict | None) -> dict:
    keys = ("auroc", "auprc", "accuracy", "balanced_accuracy", "f1", "brier", "ece")
    if metrics and "jaccard" in metrics:  # drug recommendation
        return {k: metrics.get(k) for k in ("jaccard", "f1", "prauc", "ddi_rate", "ddi_rate_ground_truth", "avg_drugs")}
    if metrics and "per_variable" in metrics:  # forecasting: each variable's MAE change against carrying the last value
        return {f"{name}_mae_vs_locf": v["mae_change"] for name, v in metrics["per_variable"].items()}
    if metrics and "rmse" in metrics:  # regression (molecular properties): its own headline, classification too if mixed
        keys = (*(k for k in keys if k in metrics), "rmse", "mae", "r2")
    return {k: metrics.get(k) for k in keys} if metrics else {}


@app.command()
@handle_errors
def evaluate(
    bundle: Annotated[Path, typer.Argument(help="A model bundle folder.")],
    data: Annotated[str, typer.Option(help="Data in the format the model was trained on.")],
    split: Annotated[str, typer.Option(help="test, val, train or all.")] = "test",
    plots: Annotated[Optional[Path], typer.Option(help="Also write ROC/PR/calibration/confusion plots here.")] = None,
    data_format: Annotated[Optional[str], typer.Option("--format", help="ICU series: physionet2012 or mimic3 (default: detected).")] = None,
    as_json: JsonFlag = False,
):
    """Evaluate a bundle on one split of a dataset (``--split all`` for external data)."""
    from medai import api

    metrics = api.evaluate(bundle, data, split, plots_dir=plots, **({"format": data_format} if data_format else {}))
    if as_json:
        _print_json(metrics)
        return
    for key, value in metrics.items():
        typer.echo(f"{key:22s} {value:.4f}" if isinstance(value, float) else f"{key:22s} {value}")


@app.command()
@handle_errors
def predict(
    bundle: Annotated[Path, typer.Argument(help="A model bundle folder.")],
    inputs: Annotated[Optional[list[Path]], typer.Argument(help="Image files (PNG, JPEG, DICOM), ICU record files (PhysioNet .txt), UCR files, WFDB records, or an .npz / folder.")] = None,
    data: Annotated[Optional[Path], typer.Option(help="A table (CSV/Parquet/ARFF) or dataset to predict every record of.")] = None,
    split: Annotated[Optional[str], typer.Option(help="For an .npz, folder or table: which split (default: test for images, all for tables).")] = None,
    smiles: Annotated[Optional[list[str]], typer.Option("--smiles", help="Molecules: a SMILES to predict (repeatable).")] = None,
    as_json: JsonFlag = False,
):
    """Predict each input: label and calibrated probabilities (forecast values for forecasters, drug classes for
    recommenders), with an OUT OF DISTRIBUTION warning and its reasons where the input is unlike the training data."""
    from medai import api
    from medai.cli.errors import fail

    items = [*(inputs or []), *([data] if data else [])]
    if not items and not smiles:
        raise fail("give the inputs to predict: image files, --data FILE, or --smiles S")
    results = api.predict(bundle, items, **({"split": split} if split else {}), **({"smiles": smiles} if smiles else {}))
    if as_json:
        _print_json(results)
        return
    for result in results:
        if "tasks" in result or "error" in result:
            typer.echo(_molecule_line(result))
            continue
        ood = result.get("ood") or {}
        warning = (f"  OUT OF DISTRIBUTION: {'; '.join(ood.get('reasons') or ['unlike the training data'])}"
                   if ood.get("out_of_distribution") else "")
        if "recommended" in result:  # a patient's medication classes
            typer.echo("\n".join([f"{result['input']}:", *(f"  {line}" for line in _recommendation_lines(result))]))
            continue
        if "forecast_hour" in result:  # a forecast: values, not a label
            values = "  ".join(f"{k}={v:.4g}" for k, v in result["predictions"].items())
            typer.echo(f"{result['input']}: forecast for hour {result['forecast_hour']}: {values}" + warning)
            continue
        probabilities = "  ".join(f"{k}={v:.3f}" for k, v in result.get("probabilities", {}).items())
        typer.echo(f"{result['input']}: {result['label']}" + (f"  ({probabilities})" if probabilities else "") + warning)


def _molecule_line(result: dict) -> str:
    where = f"row {result['row']} " if result.get("row") else ""
    if "error" in result:
        return f"{where}{result['input']}: {result['error']} ({result['reason']})"
    values = "  ".join(f"{name}={v.get('probability', v.get('value')):.3f}±{v['uncertainty']:.3f}"
                       for name, v in result["tasks"].items())
    domain = "in domain" if result["domain"]["in_domain"] else "OUT OF DOMAIN"
    return f"{where}{result['smiles']}: {values}  ({domain}, similarity {result['domain']['score']:.2f})"


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
    smiles: Annotated[Optional[str], typer.Option("--smiles", help="Molecules: the SMILES to explain.")] = None,
    as_json: JsonFlag = False,
):
    """Explain one prediction: Grad-CAM heat map for images, per-feature contributions for tables, atoms for molecules."""
    from medai import api
    from medai.cli.errors import fail

    source = smiles or data or item
    if source is None:
        raise fail("give the record to explain: an image file, --data FILE --row N, or --smiles S")
    result = api.explain(bundle, source, out, target=target, index=index, **({"split": split} if split else {}))
    if as_json:
        _print_json(result)
    else:
        typer.echo(f"{result['input']}: {result['label']}; explanation of '{result['explained_class']}' written to {out}")


@app.command()
@handle_errors
def recommend(
    bundle: Annotated[Path, typer.Argument(help="A drug-recommendation bundle folder.")],
    patient: Annotated[Path, typer.Option(help='Patient JSON: {"visits": [{"diagnoses": [...], "procedures": [...], "medications": [...]}, ...]}, current visit last.')],
    interaction_free: Annotated[bool, typer.Option("--interaction-free", help="Drop the less likely class of every interacting pair.")] = False,
    top: Annotated[int, typer.Option(help="Ranked classes to list.")] = 20,
    as_json: JsonFlag = False,
):
    """Recommend medication classes for a patient's current visit, with evidence and interaction warnings."""
    from medai.tasks.drug_recommendation import recommend_from_bundle

    result = recommend_from_bundle(bundle, patient, interaction_free=interaction_free, top=top)
    if as_json:
        _print_json(result)
        return
    for line in _recommendation_lines(result):
        typer.echo(line)


def _recommendation_lines(result: dict) -> list[str]:
    """A recommendation as text: its warnings, each class with its evidence, then the interacting pairs."""
    lines = [f"WARNING: {warning}" for warning in result.get("warnings", [])]
    for item in result["recommended"]:
        because = "; ".join(f"{e['kind']} {e['code']} {e['description']}".strip() + (f" (visit {e['visit']})" if e["visit"] else "")
                            for e in item["evidence"]) or "no single code"  # fmt: skip
        lines.append(f"{item['class']} {item['name']}  p={item['probability']:.3f}  because: {because}")
    return lines + [f"WARNING interaction: {pair['classes'][0]} ({pair['names'][0]}) + {pair['classes'][1]} "
                    f"({pair['names'][1]})" for pair in result["interactions"]]


@app.command()
@handle_errors
def datasets(as_json: JsonFlag = False):
    """List the datasets medai knows and where it finds them (MEDAI_DATA_DIR, cache, or download)."""
    from medai.data.sources.medmnist import list_known
    from medai.data.sources.series_catalog import list_series
    from medai.data.sources.tabular import list_tables

    known = list_known() + list_tables() + list_series()
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


app.command("screen")(handle_errors(screen_command))  # issue 5: the screening report (medai.cli.screen)


from medai.cli.privacy import register as _register_privacy  # noqa: E402  (issue 7: `medai audit`)

_register_privacy(app)

from medai.cli.federated import federated_app  # noqa: E402  (issue 7: `medai federated`)

app.add_typer(federated_app, name="federated")

# -- service (issue 8): `medai serve` and `medai users create-admin`; the logic lives in medai.service.runner ------

users_app = typer.Typer(help="Accounts of the medai service (see `medai serve`).", no_args_is_help=True)
app.add_typer(users_app, name="users")


@app.command()
@handle_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
):
    """Serve the REST API and web UI over the model registry (state under MEDAI_HOME; needs the serve extra)."""
    from medai.errors import require

    require("fastapi", "serve")
    from medai.service.runner import serve as run_service

    run_service(host=host, port=port)


@users_app.command("create-admin")
@handle_errors
def create_admin(
    username: Annotated[str, typer.Option(help="User name of the administrator.")],
    full_name: Annotated[str, typer.Option(help="Display name.")] = "",
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input.")] = False,
):
    """Create an administrator account of the service (the first account, or another one)."""
    import sys

    from medai.errors import require

    require("fastapi", "serve")
    from medai.service.runner import create_admin as create

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    typer.echo(f"created administrator {create(username, password, full_name)}")


# -- de-identification and encryption at rest (issue 7): the logic lives in medai.privacy -------------------------

app.add_typer(deid_app, name="deid")
app.command("encrypt")(encrypt_command)
app.command("decrypt")(decrypt_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
