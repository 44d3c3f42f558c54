"""Aggregation of the user-study ratings (:meth:`anyskill.eval.ratings.RatingStore.ratings`): means with 95 %
confidence intervals per method and criterion, and the raters' agreement.

**Means and intervals** (:func:`summarise_ratings`). By default the unit of observation is the rater: each rater's
mean score of a method over the prompts they rated is one value x_r, because one person's scores of one method are
not independent of each other. For n units with mean x̄ and sample standard deviation s (ddof 1), the interval is
Student's t interval

    x̄ ± t_{(1 + c)/2, n - 1} · s / √n          (c = 0.95)

(NaN bounds for n < 2). ``unit="rating"`` treats every rating as independent instead (narrower, and optimistic).

**Agreement** (:func:`krippendorff_alpha_interval`, :func:`rater_agreement`): Krippendorff's α with the interval
distance δ(a, b) = (a - b)², which allows missing ratings. The units are the rated items (one video: a prompt and a
method); only units with m_u >= 2 ratings are pairable, n = Σ_u m_u of them in all:

    D_o = (1 / n) Σ_u [ 1 / (m_u - 1) ] Σ_{i ≠ j in u} (v_ui - v_uj)²      observed disagreement, within units
    D_e = 1 / (n (n - 1)) Σ_{i ≠ j over all n} (v_i - v_j)²                expected disagreement, all pairable values
    α = 1 - D_o / D_e

(ordered pairs, so each unordered pair counts twice in both sums). α = 1: perfect agreement; 0: no better than
chance; < 0: systematic disagreement; NaN when D_e = 0 (every value equal) or nothing is pairable. Reference:
K. Krippendorff, "Computing Krippendorff's Alpha-Reliability" (2011).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from anyskill.eval.ratings import CRITERIA


def mean_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, lower, upper): Student's t interval of the mean of ``values`` (n,); NaN bounds for n < 2."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = float(x.mean())
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1)) * float(x.std(ddof=1)) / np.sqrt(len(x))
    return mean, mean - half, mean + half


def summarise_ratings(ratings: pd.DataFrame, unit: Literal["rater", "rating"] = "rater",
                      confidence: float = 0.95) -> pd.DataFrame:
    """One row per method and criterion: ``mean`` (of the units), ``ci_low``, ``ci_high``, ``n_units`` (raters or
    ratings) and ``n_ratings``, from ratings with columns rater, method and the :data:`CRITERIA`."""
    if unit not in ("rater", "rating"):
        raise ValueError(f"unit must be 'rater' or 'rating', got {unit!r}")
    rows = []
    for method, group in ratings.groupby("method", sort=True):
        for criterion in CRITERIA:
            values = group.groupby("rater")[criterion].mean() if unit == "rater" else group[criterion]
            mean, low, high = mean_ci(values.to_numpy(), confidence)
            rows.append({"method": method, "criterion": criterion, "mean": mean, "ci_low": low, "ci_high": high,
                         "n_units": len(values), "n_ratings": len(group)})
    return pd.DataFrame(rows, columns=["method", "criterion", "mean", "ci_low", "ci_high", "n_units", "n_ratings"])


def _pair_sum(v: np.ndarray) -> float:
    """Σ_{i ≠ j} (v_i - v_j)² over ordered pairs = 2 (k Σ v² - (Σ v)²) for k values."""
    return float(2.0 * (len(v) * np.sum(v * v) - np.sum(v) ** 2))


def krippendorff_alpha_interval(values: np.ndarray) -> float:
    """Krippendorff's α (interval metric) of ``values`` (raters, units), NaN where a rater did not rate a unit."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"values must be (raters, units), got shape {x.shape}")
    units = [col[~np.isnan(col)] for col in x.T]
    units = [u for u in units if len(u) >= 2]
    if not units:
        return float("nan")
    n = sum(len(u) for u in units)
    observed = sum(_pair_sum(u) / (len(u) - 1) for u in units) / n
    expected = _pair_sum(np.concatenate(units)) / (n * (n - 1))
    return float(1.0 - observed / expected) if expected > 0 else float("nan")


def rater_agreement(ratings: pd.DataFrame) -> pd.DataFrame:
    """One row per criterion: Krippendorff's ``alpha`` (interval) over the rated items (column ``code``), the number
    of ``units`` rated by two raters or more, of ``raters`` and of ``ratings``."""
    rows = []
    for criterion in CRITERIA:
        table = ratings.pivot_table(index="rater", columns="code", values=criterion, aggfunc="mean")
        rows.append({"criterion": criterion, "alpha": krippendorff_alpha_interval(table.to_numpy()),
                     "units": int((table.notna().sum(axis=0) >= 2).sum()), "raters": len(table),
                     "ratings": int(table.notna().to_numpy().sum())})
    return pd.DataFrame(rows, columns=["criterion", "alpha", "units", "raters", "ratings"])
