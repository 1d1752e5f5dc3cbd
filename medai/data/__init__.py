"""Data layer: a Dataset with its Schema, splits, and one source module per file format."""

from medai.data.dataset import Dataset, Schema
from medai.data.splits import stratified_split

__all__ = ["Dataset", "Schema", "stratified_split"]
