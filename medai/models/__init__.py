"""Model registry and model families. Importing this package registers every built-in network."""

from medai.models import autoencoder, cnn, ensemble, tabular  # noqa: F401  (registers the networks)
from medai.models.classifier import Classifier
from medai.models.registry import NETWORKS, Registry

__all__ = ["NETWORKS", "Registry", "Classifier"]
