"""Evaluation library: feature extractors, Fréchet statistics, metrics, benchmark protocols.

A plain library (no Prefect, Ray or MLflow imports): callable from a notebook.

Public API:
- ``frechet_distance(mu1, sigma1, mu2, sigma2) -> float`` (``evaluation.frechet``)
- ``FeatureStats``: streaming float64 mean/covariance, ``update`` / ``merge`` / ``mean`` / ``cov``
- ``compute_fvd``, ``compute_fid``, ``compute_clipsim`` (``evaluation.metrics``)
- extractors: ``I3DExtractor`` (pytorch-i3d ``i3d_pretrained_400.pt``), ``StyleGANVI3DExtractor``
  (``i3d_torchscript.pt``), ``InceptionExtractor`` (``pt_inception-2015-12-05``), ``CLIPSimScorer``
- ``bootstrap_frechet``, ``frechet_infinity``, ``ReferenceStatsCache``, ``PROTOCOLS``
"""

from .bootstrap import BootstrapResult, ExtrapolationResult, bootstrap_frechet, frechet_infinity
from .cache import ReferenceStatsCache, cache_key
from .clipsim import CLIPSimScorer
from .extractors import I3DExtractor, InceptionExtractor, StyleGANVI3DExtractor, precision_mode, torchmetrics_fid
from .frechet import frechet_distance
from .i3d import InceptionI3d, load_i3d
from .inception import InceptionV3FID, load_inception
from .metrics import FrechetResult, compute_clipsim, compute_fid, compute_fvd, extract_stats
from .protocols import PROTOCOLS, FrechetProtocol, get_protocol
from .stats import FeatureStats
from .weights import MissingWeightsError

__all__ = [
    "BootstrapResult", "CLIPSimScorer", "ExtrapolationResult", "FeatureStats", "FrechetProtocol", "FrechetResult",
    "I3DExtractor", "InceptionExtractor", "InceptionI3d", "InceptionV3FID", "MissingWeightsError", "PROTOCOLS",
    "ReferenceStatsCache", "StyleGANVI3DExtractor", "bootstrap_frechet", "cache_key", "compute_clipsim",
    "compute_fid", "compute_fvd", "extract_stats", "frechet_distance", "frechet_infinity", "get_protocol",
    "load_i3d", "load_inception", "precision_mode", "torchmetrics_fid",
]
