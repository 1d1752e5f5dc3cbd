"""Model registry and model families. Importing this package registers every built-in network."""

from medai.models import affinity, autoencoder, cnn, drugrec, ecg, ensemble, molecule, mpnn, recurrent, series_ensemble, series_summary, tabular  # noqa: F401  (registers the networks)
from medai.models.classifier import Classifier
from medai.models.registry import NETWORKS, Registry
from medai.models.series import SeriesModel

__all__ = ["NETWORKS", "Classifier", "Registry", "SeriesModel"]
