"""Augmentation g(z, s): WordNet synonyms and back translation, offline; see :mod:`.pipeline`."""

from hildif.feedback.augmentation.pipeline import (
    AugmentResult, augment, build_chains, build_fill_chains, copies_for_score,
)
from hildif.feedback.augmentation.similarity import copy_similarity

__all__ = ["AugmentResult", "augment", "build_chains", "build_fill_chains", "copies_for_score", "copy_similarity"]
