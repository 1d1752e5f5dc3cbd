"""Drug discovery data: molecule tables, featurisers, splits and drug-target affinity data.

- :mod:`medai.chem.molecules`: read SMILES tables, standardise, deduplicate, report (:class:`MoleculeTable`).
- :mod:`medai.chem.standardise`: one SMILES through RDKit sanitisation and ``rdMolStandardize``.
- :mod:`medai.chem.featurise`: Morgan fingerprints, RDKit descriptors; ``featurise(table, featuriser)`` runs one
  with a per-dataset cache (import it from the module: the package attribute is the module).
- :mod:`medai.chem.graphs`: atom and bond features and batched molecular graphs for message passing.
- :mod:`medai.chem.splits`: random, Bemis-Murcko scaffold and DeepDTA fold splits.
- :mod:`medai.chem.sequences`: integer encodings of protein sequences and SMILES characters.
- :mod:`medai.chem.dta`: drug-target affinity data (DeepDTA folders, CSV pairs).
- :mod:`medai.chem.datasets`: the MoleculeNet and DeepDTA sets under the data folder, by name.
- :mod:`medai.chem.metrics`: concordance index, MSE and r_m^2 for affinity regression.

RDKit is an optional dependency (``pip install 'medai[chem]'``), imported only when a function needs it, so importing
this package is cheap.
"""

from medai.chem.datasets import (
    list_chem_datasets,
    load_affinity_dataset,
    load_molecule_dataset,
)
from medai.chem.dta import AffinityData, load_deepdta_folder, read_affinity_table
from medai.chem.featurise import (
    FeatureMatrix,
    MorganFingerprint,
    RDKitDescriptors,
    make_featuriser,
)
from medai.chem.graphs import BatchMolGraph, MolGraphFeaturiser, MolGraphSet
from medai.chem.metrics import affinity_metrics, concordance_index, mse, rm2
from medai.chem.molecules import MoleculeTable, molecule_table, read_molecule_table
from medai.chem.splits import (
    DeepDTAFolds,
    murcko_scaffolds,
    random_split,
    read_deepdta_folds,
    scaffold_split,
)
from medai.chem.standardise import StandardiseOptions, standardise_smiles

__all__ = [
    "AffinityData", "BatchMolGraph", "DeepDTAFolds", "FeatureMatrix", "MolGraphFeaturiser", "MolGraphSet",
    "MoleculeTable", "MorganFingerprint", "RDKitDescriptors", "StandardiseOptions", "affinity_metrics",
    "concordance_index", "list_chem_datasets", "load_affinity_dataset", "load_deepdta_folder",
    "load_molecule_dataset", "make_featuriser", "molecule_table", "mse", "murcko_scaffolds", "random_split",
    "read_affinity_table", "read_deepdta_folds", "read_molecule_table", "rm2", "scaffold_split",
    "standardise_smiles",
]
