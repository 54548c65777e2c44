"""Data layer: the :class:`Example` record, file loaders and the named splits."""

from hildif.data.example import ENTAILMENT, LABEL_NAMES, NON_ENTAILMENT, Example, binary_label, stable_id
from hildif.data.loaders import DataFormatError, LoadStats, load_examples
from hildif.data.splits import (
    DataDirError,
    cached_train,
    evaluation_sets,
    load_anchors,
    load_dev,
    load_hans,
    load_train,
    resolve_data_dir,
    stratified_sample,
)

__all__ = [
    "ENTAILMENT", "LABEL_NAMES", "NON_ENTAILMENT", "Example", "binary_label", "stable_id",
    "DataFormatError", "LoadStats", "load_examples",
    "DataDirError", "cached_train", "evaluation_sets", "load_anchors", "load_dev", "load_hans", "load_train", "resolve_data_dir", "stratified_sample",
]
