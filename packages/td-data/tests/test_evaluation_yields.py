"""td_data.evaluation.yields: Wilson shares, the Katz ratio interval and the zero cases of the enrichment."""

from __future__ import annotations

import json
import math

import pytest

from td_data.evaluation import yields
from td_data.exceptions import EvaluationError


# ---------------------------------------------------------------------------------------------- Wilson
@pytest.mark.parametrize(
    ("x", "n", "low", "high"),
    [
        # Wilson 95% score intervals as tabulated (e.g. Newcombe 1998, Table I; any statistics package)
        (0, 10, 0.0, 0.2775),
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
        (1, 20, 0.0089, 0.2361),
    ],
)
def test_wilson_known_values(x, n, low, high):
    lo, hi = yields.wilson_interval(x, n)
    assert lo == pytest.approx(low, abs=1e-4)
    assert hi == pytest.approx(high, abs=1e-4)


def test_wilson_edges_and_errors():
    assert yields.wilson_interval(0, 0) == (None, None)
    assert yields.wilson_interval(0, 7)[0] == 0.0 and yields.wilson_interval(7, 7)[1] == 1.0
    with pytest.raises(ValueError):
        yields.wilson_interval(3, 2)
    s = yields.share(3, 12)
    assert s["share"] == 0.25 and s["ci_low"] < 0.25 < s["ci_high"] and (s["count"], s["n"]) == (3, 12)
    assert yields.share(0, 0)["share"] is None


def test_bad_counts_name_the_rule_and_the_values():
    with pytest.raises(EvaluationError, match=r"need 0 <= successes <= n, got 3 of 2"):
        yields.wilson_interval(3, 2)
    with pytest.raises(EvaluationError, match=r"needs 0 < x <= n in both groups, got 0/10 and 3/10"):
        yields.katz_interval(0, 10, 3, 10)


def test_format_share_reads_the_interval():
    assert yields.format_share(yields.share(0, 0)) == "n/a (0/0)"
    s = yields.share(12, 100)
    assert yields.format_share(s) == f"0.120 [{s['ci_low']:.3f}, {s['ci_high']:.3f}] (12/100)"


# ---------------------------------------------------------------------------------------------- Katz
def test_katz_against_hand_computation():
    # RR = (10/50) / (5/100) = 4; SE(ln RR) = sqrt(1/10 - 1/50 + 1/5 - 1/100) = sqrt(0.27) = 0.519615;
    # 4 exp(-/+ 1.959964 * 0.519615) = 4 * 0.361163 = 1.44465 and 4 * 2.768836 = 11.07535
    ratio, low, high = yields.katz_interval(10, 50, 5, 100)
    assert ratio == pytest.approx(4.0)
    assert low == pytest.approx(1.44465, abs=1e-4)
    assert high == pytest.approx(11.07535, abs=1e-4)
    e = yields.enrichment(10, 50, 5, 100)
    assert e["status"] == "finite" and e["method"] == "katz-log"
    assert (e["ratio"], e["ci_low"], e["ci_high"]) == (ratio, low, high)
    # equal shares: the interval is symmetric about 1 on the log scale
    _, lo, hi = yields.katz_interval(7, 40, 7, 40)
    assert lo * hi == pytest.approx(1.0)
    with pytest.raises(ValueError):
        yields.katz_interval(0, 10, 3, 10)


def test_enrichment_zero_cases():
    inf = yields.enrichment(3, 20, 0, 20)  # unconditioned 0: infinite, one-sided lower bound
    lo1, _ = yields.wilson_interval(3, 20)
    _, hi2 = yields.wilson_interval(0, 20)
    assert inf["status"] == "infinite" and math.isinf(inf["ratio"]) and math.isinf(inf["ci_high"])
    assert inf["ci_low"] == pytest.approx(lo1 / hi2) and 0 < inf["ci_low"] < 1
    zero = yields.enrichment(0, 20, 3, 20)  # conditioned 0: ratio 0, one-sided upper bound
    assert zero["status"] == "zero" and zero["ratio"] == 0.0 and zero["ci_low"] == 0.0
    assert zero["ci_high"] == pytest.approx(yields.wilson_interval(0, 20)[1] / yields.wilson_interval(3, 20)[0])
    both = yields.enrichment(0, 20, 0, 30)
    assert both["status"] == "both_zero" and both["ratio"] is None and "both shares are 0" in both["note"]
    empty = yields.enrichment(0, 0, 1, 5)
    assert empty["status"] == "undefined" and empty["ratio"] is None
    assert yields.format_enrichment(inf).startswith("infinite") and ">=" in yields.format_enrichment(inf)
    assert yields.format_enrichment(zero).startswith("0 ") and "<=" in yields.format_enrichment(zero)
    assert yields.format_enrichment(both) == "undefined: both shares are 0"
    as_json = yields.enrichment_for_json(inf)
    assert as_json["ratio"] == "inf" and as_json["ci_high"] == "inf"
    json.dumps(as_json, allow_nan=False)
