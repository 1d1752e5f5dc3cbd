"""The drug-discovery datasets under the data folder (:func:`medai.settings.data_dir`), loaded by name.

MoleculeNet sets (chemprop's CSVs in ``moleculenet/``) load with :func:`load_molecule_dataset`, the DeepDTA
sets (``dta_davis/``, ``dta_kiba/``) with :func:`load_affinity_dataset`. :func:`list_chem_datasets` says which are
present locally.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from medai import settings
from medai.chem.dta import AffinityData, load_deepdta_folder
from medai.chem.molecules import MoleculeTable, read_molecule_table
from medai.chem.standardise import StandardiseOptions
from medai.errors import DataNotFoundError, check_choice


@dataclass(frozen=True)
class MoleculeDatasetSpec:
    """A molecule table under the data folder: file, columns, recommended split and metric."""

    file: str
    smiles_column: str
    targets: tuple[str, ...] | None  # None: every numeric column
    split: str  # "scaffold" or "random", as MoleculeNet recommends
    metric: str  # "roc_auc" or "rmse"
    description: str
    task_names: tuple[str, ...] | None = None  # display names replacing misleading column names


MOLECULE_DATASETS: dict[str, MoleculeDatasetSpec] = {
    "bbbp": MoleculeDatasetSpec("moleculenet/bbbp.csv", "smiles", ("p_np",), "scaffold", "roc_auc",
                                "blood-brain barrier penetration (binary, 2,039 rows)"),
    "bace": MoleculeDatasetSpec("moleculenet/bace.csv", "mol", ("Class",), "scaffold", "roc_auc",
                                "BACE-1 inhibition (binary, 1,513 rows)"),
    "clintox": MoleculeDatasetSpec("moleculenet/clintox.csv", "smiles", ("FDA_APPROVED", "CT_TOX"), "scaffold",
                                   "roc_auc", "FDA approval and clinical-trial toxicity (2 binary tasks)"),
    "tox21": MoleculeDatasetSpec("moleculenet/tox21.csv", "smiles", None, "scaffold", "roc_auc",
                                 "Tox21 challenge (12 binary assays, missing = untested)"),
    "sider": MoleculeDatasetSpec("moleculenet/sider.csv", "smiles", None, "scaffold", "roc_auc",
                                 "SIDER side effects by organ class (27 binary tasks)"),
    "hiv": MoleculeDatasetSpec("moleculenet/hiv.csv.gz", "smiles", ("HIV_active",), "scaffold", "roc_auc",
                               "HIV replication inhibition (binary, 41,127 rows)"),
    "esol": MoleculeDatasetSpec("moleculenet/delaney.csv", "smiles", ("logp",), "random", "rmse",
                                "ESOL aqueous solubility, log(mol/L) (the file's 'logp' column)",
                                task_names=("log_solubility",)),
    "freesolv": MoleculeDatasetSpec("moleculenet/freesolv.csv", "smiles", ("freesolv",), "random", "rmse",
                                    "FreeSolv hydration free energy, kcal/mol"),
    "lipo": MoleculeDatasetSpec("moleculenet/lipo.csv", "smiles", ("lipo",), "random", "rmse",
                                "lipophilicity, logD at pH 7.4"),
}
AFFINITY_DATASETS = {"davis": "dta_davis", "kiba": "dta_kiba"}


def load_molecule_dataset(name: str, options: StandardiseOptions | None = None,
                          use_cache: bool = True) -> MoleculeTable:
    """Load a MoleculeNet set by name (see :data:`MOLECULE_DATASETS`) from the data folder.

    Raises:
        DataNotFoundError: the file is not under the data folder.
        InvalidInputError: an unknown name (with the nearest known one).
    """
    check_choice("dataset", name, MOLECULE_DATASETS)
    spec = MOLECULE_DATASETS[name]
    table = read_molecule_table(_locate(spec.file, name), spec.smiles_column, spec.targets, options, use_cache)
    if spec.task_names:
        table = replace(table, task_names=spec.task_names)
        table.report["tasks"] = dict(zip(spec.task_names, table.report["tasks"].values()))
    return table


def load_affinity_dataset(name: str, options: StandardiseOptions | None = None, use_cache: bool = True) -> AffinityData:
    """Load DAVIS or KIBA (DeepDTA layout, setting-1 folds) from the data folder."""
    check_choice("dataset", name, AFFINITY_DATASETS)
    return load_deepdta_folder(_locate(AFFINITY_DATASETS[name], name), options=options, use_cache=use_cache)


def list_chem_datasets() -> list[dict]:
    """Every known set with its task and local path (None when absent)."""
    root = settings.data_dir()
    entries = []
    for name, spec in MOLECULE_DATASETS.items():
        path = root / spec.file if root else None
        entries.append({"name": name, "description": spec.description, "task": "molecule-property",
                        "split": spec.split, "metric": spec.metric,
                        "local_path": str(path) if path and path.is_file() else None})
    for name, folder in AFFINITY_DATASETS.items():
        path = root / folder if root else None
        entries.append({"name": name, "description": f"{name.upper()} drug-target affinity (DeepDTA folds)",
                        "task": "drug-target-affinity", "split": "deepdta-setting1", "metric": "mse, ci",
                        "local_path": str(path) if path and path.is_dir() else None})
    return entries


def _locate(relative: str, name: str):
    root = settings.data_dir()
    path = root / relative if root else None
    if path is None or not path.exists():
        where = f"'{root}'" if root else "no data folder (none found)"
        raise DataNotFoundError(f"The '{name}' dataset needs '{relative}' under the data folder; looked in {where}. "
                                f"Set MEDAI_DATA_DIR to the folder that holds it.")
    return path
