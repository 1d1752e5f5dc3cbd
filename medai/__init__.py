"""medai: train, evaluate, explain and serve deep-learning models on medical data.

The names most users import first::

    from medai import train, evaluate, predict, explain, load_bundle
"""

__version__ = "0.1.0"

from medai.api import evaluate, explain, predict, train
from medai.bundle import ModelBundle, load_bundle
from medai.errors import DataNotFoundError, InvalidInputError, MedaiError

__all__ = [
    "__version__",
    "train",
    "evaluate",
    "predict",
    "explain",
    "load_bundle",
    "ModelBundle",
    "MedaiError",
    "InvalidInputError",
    "DataNotFoundError",
]
