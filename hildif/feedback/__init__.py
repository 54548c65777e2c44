"""Human feedback: ratings in, aggregated scores and agreement out; augmentation g(z, s); simulated annotators.

Pure functions over plain records; no model or server needed (the similarity filter takes any encoder).
"""

from hildif.feedback.aggregation import AGGREGATORS, AggregatedPair, AggregationResult, aggregate
from hildif.feedback.agreement import Agreement, compute_agreement, ordinal_alpha
from hildif.feedback.augmentation import AugmentResult, augment, build_chains, build_fill_chains, copies_for_score
from hildif.feedback.ratings import NormalizedRatings, Rating, RatingError, normalize
from hildif.feedback.resources import ResourceMissingError
from hildif.feedback.simulation import SimulatedAnnotator, simulate_ratings

__all__ = [
    "AGGREGATORS", "AggregatedPair", "AggregationResult", "aggregate", "Agreement", "compute_agreement",
    "ordinal_alpha", "AugmentResult", "augment", "build_chains", "build_fill_chains", "copies_for_score", "NormalizedRatings", "Rating",
    "RatingError", "normalize", "ResourceMissingError", "SimulatedAnnotator", "simulate_ratings",
]
