"""Yields and enrichment with intervals: shares of binomial counts and ratios of two shares.

:func:`share` gives a count over a total with its Wilson score interval; :func:`enrichment` the ratio of
two independent shares (a conditioned over an unconditioned arm) with the Katz log interval, and the
one-sided bounds that remain when a share is zero. Intervals are 95% by default (``z`` = :data:`Z95`).
"""

from __future__ import annotations

import math
from typing import Any

from td_data.exceptions import EvaluationError

__all__ = [
    "Z95",
    "enrichment",
    "enrichment_for_json",
    "format_enrichment",
    "format_share",
    "katz_interval",
    "share",
    "wilson_interval",
]

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """Wilson score interval of a binomial proportion (95% by default); ``(None, None)`` when ``n == 0``."""
    if n < 0 or successes < 0 or successes > n:
        raise EvaluationError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return None, None
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    if successes == 0:
        low = 0.0
    if successes == n:
        high = 1.0
    return low, high


def share(successes: int, n: int, z: float = Z95) -> dict[str, Any]:
    """``{"count", "n", "share", "ci_low", "ci_high"}``: the share with its Wilson interval (None when n = 0)."""
    low, high = wilson_interval(successes, n, z)
    return {"count": successes, "n": n, "share": successes / n if n else None, "ci_low": low, "ci_high": high}


def katz_interval(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """``(ratio, low, high)``: the risk ratio (x1/n1)/(x2/n2) with the Katz log interval.

    SE(ln RR) = sqrt(1/x1 - 1/n1 + 1/x2 - 1/n2) (Katz et al. 1978); needs x1, x2 > 0.
    """
    if min(x1, x2) <= 0 or x1 > n1 or x2 > n2:
        raise EvaluationError(f"the Katz interval needs 0 < x <= n in both groups, got {x1}/{n1} and {x2}/{n2}")
    ratio = (x1 / n1) / (x2 / n2)
    se = math.sqrt(1 / x1 - 1 / n1 + 1 / x2 - 1 / n2)
    return ratio, ratio * math.exp(-z * se), ratio * math.exp(z * se)


def enrichment(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> dict[str, Any]:
    """Ratio of two independent binomial shares, arm 1 (conditioned) over arm 2 (unconditioned), with a 95% interval.

    ``status`` says which case applies:

    * ``finite``: both counts > 0; Katz log interval.
    * ``infinite``: x2 = 0 < x1; the ratio is infinite and only a one-sided lower bound is given,
      ``ci_low`` = Wilson lower bound of share 1 / Wilson upper bound of share 2 (each a one-sided 97.5%
      bound, so together at least 95% by Bonferroni); ``ci_high`` = inf.
    * ``zero``: x1 = 0 < x2; the ratio is 0, ``ci_low`` = 0 and the one-sided upper bound is
      Wilson upper of share 1 / Wilson lower of share 2 (same construction).
    * ``both_zero``: no success in either arm; no ratio, no interval (the upper bound of share 1 is
      reported in ``note``).
    * ``undefined``: an arm has n = 0.

    ``ratio``, ``ci_low`` and ``ci_high`` are floats (``math.inf`` allowed) or None.
    """
    base = {"x1": x1, "n1": n1, "x2": x2, "n2": n2}
    if n1 <= 0 or n2 <= 0:
        return {**base, "status": "undefined", "ratio": None, "ci_low": None, "ci_high": None, "method": None,
                "note": "an arm has no crystal in the denominator"}  # fmt: skip
    if x1 > 0 and x2 > 0:
        ratio, low, high = katz_interval(x1, n1, x2, n2, z)
        return {**base, "status": "finite", "ratio": ratio, "ci_low": low, "ci_high": high, "method": "katz-log",
                "note": ""}  # fmt: skip
    lo1, hi1 = wilson_interval(x1, n1, z)
    lo2, hi2 = wilson_interval(x2, n2, z)
    method = "one-sided: Wilson bounds of the two shares (Bonferroni, >= 95%)"
    if x1 > 0:  # x2 == 0
        note = "unconditioned share is 0: the ratio is infinite; lower bound only"
        return {**base, "status": "infinite", "ratio": math.inf, "ci_low": lo1 / hi2, "ci_high": math.inf,
                "method": method, "note": note}  # fmt: skip
    if x2 > 0:  # x1 == 0
        return {**base, "status": "zero", "ratio": 0.0, "ci_low": 0.0, "ci_high": hi1 / lo2, "method": method,
                "note": "conditioned share is 0: the ratio is 0; upper bound only"}  # fmt: skip
    return {**base, "status": "both_zero", "ratio": None, "ci_low": None, "ci_high": None, "method": None,
            "note": f"both shares are 0 (upper bounds {hi1:.3g} and {hi2:.3g}): no ratio can be given"}  # fmt: skip


def format_share(s: dict[str, Any]) -> str:
    """``"0.120 [0.071, 0.196] (12/100)"``, or ``"n/a (0/0)"``."""
    if s["share"] is None:
        return f"n/a ({s['count']}/{s['n']})"
    return f"{s['share']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}] ({s['count']}/{s['n']})"


def format_enrichment(e: dict[str, Any]) -> str:
    """The ratio and its interval as text, with the zero cases spelled out."""
    status = e["status"]
    if status == "finite":
        return f"{e['ratio']:.2f} [{e['ci_low']:.2f}, {e['ci_high']:.2f}]"
    if status == "infinite":
        return f"infinite (unconditioned 0); >= {e['ci_low']:.2f} (one-sided 95%)"
    if status == "zero":
        return f"0 (conditioned 0); <= {e['ci_high']:.2f} (one-sided 95%)"
    if status == "both_zero":
        return "undefined: both shares are 0"
    return "undefined: an arm has no crystal"


def enrichment_for_json(e: dict[str, Any]) -> dict[str, Any]:
    """The enrichment for JSON: infinities as the string ``"inf"`` (JSON has no infinity).

    >>> enrichment_for_json(enrichment(3, 20, 0, 20))["ci_high"]
    'inf'
    """
    return {k: ("inf" if isinstance(v, float) and math.isinf(v) else v) for k, v in e.items()}
