"""Crystal fingerprints for the CDVAE / DiffCSP metrics.

* :mod:`~td_data.fingerprint.crystalnn`: matminer's ``CrystalNNFingerprint.from_preset("ops")``
  reimplemented, vectorised over sites and neighbours (:func:`site_fingerprints`,
  :func:`structure_fingerprint`), equal to matminer's to floating-point rounding;
* :mod:`~td_data.fingerprint.featurise`: :func:`fingerprints` of many crystals (structure and Magpie
  composition), in a process pool, with an optional cache keyed by :func:`content_hash`.

>>> from td_data.fingerprint import FEATURE_LABELS
>>> len(FEATURE_LABELS)
61
"""

from __future__ import annotations

from td_data.fingerprint.crystalnn import (
    FEATURE_LABELS,
    FINGERPRINT_VERSION,
    site_average,
    site_fingerprints,
    structure_fingerprint,
)
from td_data.fingerprint.featurise import (
    STRUCTURE_FINGERPRINT,
    STRUCTURE_FINGERPRINTS,
    Fingerprints,
    content_hash,
    fingerprints,
)

__all__ = [
    "FEATURE_LABELS",
    "FINGERPRINT_VERSION",
    "STRUCTURE_FINGERPRINT",
    "STRUCTURE_FINGERPRINTS",
    "Fingerprints",
    "content_hash",
    "fingerprints",
    "site_average",
    "site_fingerprints",
    "structure_fingerprint",
]
