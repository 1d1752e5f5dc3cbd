"""Model registry and model families. Importing this package registers every built-in network."""

from medai.models import (  # noqa: F401  (registers the networks)
    affinity,
    autoencoder,
    cnn,
    drugrec,
    ecg,
    ensemble,
    molecule,
    mpnn,
    recurrent,
    series_ensemble,
    series_summary,
    tabular,
)
from medai.models.classifier import Classifier
from medai.models.registry import NETWORKS, Registry
from medai.models.series import SeriesModel

__all__ = ["NETWORKS", "Classifier", "Registry", "SeriesModel"]
