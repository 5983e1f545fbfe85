"""Threshold calibration: how far apart unrelated photos are, and which threshold keeps the
expected false matches per day under a target for a given list size and upload volume.

Each upload is compared with each of the N list entries, so with U uploads a day the
expected number of false matches a day is ``U * N * p(t)``, where p(t) is the chance that
an unrelated (upload, entry) pair lies within t bits. The recommended threshold is the
largest t with ``U * N * p_upper(t) <= target``.

p(t) at the thresholds that matter (1e-12 and below) is far under what a few tens of
thousands of measured pairs can show, so the lower tail is modelled:

- **Kinds of code pair.** A method compares a reference and an upload through several code
  pairs (the upload's eight rotations and flips; a bank's windows and tiles) and matches
  when any one is within t. So p(t) is bounded by the sum over the *kinds* of code pair
  (`lightkeeper.evaluation.pairs`) of the share of photo pairs that have the kind times its
  own p_k(t) (the union bound). Each kind is a population of its own, fitted on its own.
  The smallest distance over all of them is not: it mixes them into a distribution whose
  middle is narrower than its far tail, so a normal fitted to it extrapolates too light a
  tail (measured on the everyday set: PDQ with its eight variants got a *lighter* tail at 31
  bits than PDQ alone, whose one code pair it includes, and regions than tiles). The sum
  only grows when a method adds codes: a superset of code pairs is never called safer.
- **Model.** The distances of unrelated photos under PDQ are roughly normal around 128,
  with more spread than the binomial's 8 bits (bits are correlated) and a lower tail
  that need not follow the bulk. So for each kind a normal is fitted to the *far lower
  tail only*: least squares of ``t + 0.5`` on ``Φ⁻¹(F(t))`` over the thresholds whose
  empirical CDF F lies between 20 pairs' worth and 1% (a straight line on a normal
  probability plot). A kind with too few pairs for that (test sets, a window few photos
  have) falls back to the mean and standard deviation of its pairs.
- **Uncertainty.** Pairs share photos, so pairs are not independent samples: the fit is
  bootstrapped over *photos* (resampled with replacement; pairs of a photo with itself
  left out), every kind refitted with the same resample, and `log10_p_upper` is the
  `confidence` quantile of the summed p(t) over replicates.
- **Floor.** Where pairs were actually seen within t, p_upper(t) is at least their share:
  a model never argues a measured false match away.
- **Quality gate.** The matcher does not match a PDQ hash under the quality floor, so the
  harness fits the pairs whose upload passes it: the pairs that could ever be a false
  match (the closest astronomy pairs are dark, flat photos under the floor).

Assumptions, stated in the output and in docs/accuracy.md: uploads and list entries are
independent of each other, as random photos of one set are; real uploads may be closer to
the list (the same genre, near-duplicates of listed scenes), so a set of look-alike
photos (the astronomy set) is the stress case, and a platform should calibrate on photos
like its own. The target counts expected false *candidates*; each is reviewed by a person
before anything is reported (DESIGN §7), which is why the default target is 0.01 a day
(one every ~100 days per platform): rare enough that each gets a careful review and the
review queue is never flooded by the hash, not zero, which no threshold above 0 promises.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from scipy.special import log_ndtr, ndtri

from lightkeeper.evaluation.pairs import KindPairs, matrix_kind

__all__ = [
    "DEFAULT_TARGET",
    "LIST_SIZES",
    "UPLOADS_PER_DAY",
    "Recommendation",
    "TailFit",
    "calibration_table",
    "fit_tail",
    "recommend",
]

BITS: Final = 256
#: Default target: expected false matches a day, per platform (see the module docstring).
DEFAULT_TARGET: Final = 0.01
#: List sizes and upload volumes of the calibration table.
LIST_SIZES: Final[tuple[int, ...]] = (1_000_000, 13_400_000, 100_000_000)
UPLOADS_PER_DAY: Final[tuple[int, ...]] = (1_000_000, 100_000_000)
#: The lower tail fitted: from this many pairs' worth of the CDF up to this share. The far
#: end of what was measured is where the extrapolation starts, but a handful of pairs make a
#: bootstrap that swings wildly. Measured on the everyday set (13.4 M hashes, 1 M uploads a
#: day), the recommended PDQ threshold went from 13 (5 pairs' worth to 1%) to 36 (20 pairs
#: to 1%) to 51 (20 pairs to 10%, where the bulk flattens the tail): this window is the
#: middle, and the docs say how much rests on it.
TAIL_MIN_PAIRS: Final = 20
TAIL_TO: Final = 0.01
#: log10 of probabilities too small to matter (and to represent).
LOG10_FLOOR: Final = -300.0

_THRESHOLDS: Final = np.arange(BITS + 1, dtype=np.float64)
_LN10: Final = math.log(10.0)


@dataclass(frozen=True)
class TailFit:
    """The unrelated-pair distances of one set under one method, and their fitted tail."""

    set: str
    method: str
    signal_type: str
    photos: int
    #: Ordered pairs (i, j), i != j, fitted: distance of reference i to upload j …
    pairs: int
    #: … whose upload's quality is at least this floor (None: every pair).
    quality_floor: int | None
    #: Of the smallest distance of each pair (what the matcher compares).
    mean: float
    sd: float
    #: The lower-tail normal of the kind of code pair that weighs most in p(31), the
    #: heaviest: its p_k(t) = Φ((t + 0.5 - mu) / sigma).
    mu: float
    sigma: float
    #: "lower-tail normal" or "moments" (too few pairs for a tail fit): the heaviest kind's.
    model: str
    #: Bootstrap quantiles (1 - confidence, confidence) of the heaviest kind's mu and sigma.
    mu_interval: tuple[float, float]
    sigma_interval: tuple[float, float]
    replicates: int
    confidence: float
    #: log10 p(t) and its pessimistic bound, for t = 0..256: summed over the kinds.
    log10_p: tuple[float, ...]
    log10_p_upper: tuple[float, ...]
    #: Ordered pairs within t, t = 0..256 (cumulative), by their smallest distance.
    observed: tuple[int, ...]
    #: How many kinds of code pair are summed, and the heaviest one's name.
    kinds: int = 1
    heaviest: str = ""

    def p_upper(self, threshold: int) -> float:
        return float(10.0 ** self.log10_p_upper[threshold])

    def to_json(self) -> dict[str, Any]:
        return {
            "set": self.set,
            "method": self.method,
            "signal_type": self.signal_type,
            "photos": self.photos,
            "pairs": self.pairs,
            "quality_floor": self.quality_floor,
            "mean": self.mean,
            "sd": self.sd,
            "mu": self.mu,
            "sigma": self.sigma,
            "model": self.model,
            "mu_interval": list(self.mu_interval),
            "sigma_interval": list(self.sigma_interval),
            "replicates": self.replicates,
            "confidence": self.confidence,
            "log10_p": list(self.log10_p),
            "log10_p_upper": list(self.log10_p_upper),
            "observed": list(self.observed),
            "kinds": self.kinds,
            "heaviest": self.heaviest,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TailFit:
        return cls(
            set=data["set"],
            method=data["method"],
            signal_type=data["signal_type"],
            photos=data["photos"],
            pairs=data["pairs"],
            quality_floor=data["quality_floor"],
            mean=data["mean"],
            sd=data["sd"],
            mu=data["mu"],
            sigma=data["sigma"],
            model=data["model"],
            mu_interval=(data["mu_interval"][0], data["mu_interval"][1]),
            sigma_interval=(data["sigma_interval"][0], data["sigma_interval"][1]),
            replicates=data["replicates"],
            confidence=data["confidence"],
            log10_p=tuple(data["log10_p"]),
            log10_p_upper=tuple(data["log10_p_upper"]),
            observed=tuple(data["observed"]),
            kinds=data.get("kinds", 1),  # results written before kinds were fitted apart
            heaviest=data.get("heaviest", ""),
        )


def _floored(log10s: NDArray[np.float64]) -> NDArray[np.float64]:
    floored: NDArray[np.float64] = np.maximum(log10s, LOG10_FLOOR)
    return floored


def _fit(
    histogram: NDArray[np.float64], total: float, moments: tuple[float, float]
) -> tuple[float, float, bool]:
    """(mu, sigma, whether the tail was fitted) of one kind's distances: `histogram` counts
    (possibly weighted) the pairs at each distance from 0 up to its length, of `total` in
    all; `moments` (mean, sd) is the fallback when the tail has too few points to fit."""
    cdf = np.cumsum(histogram) / total
    tail = np.nonzero((cdf >= TAIL_MIN_PAIRS / total) & (cdf <= TAIL_TO))[0]
    if len(tail) >= 3:
        z = ndtri(cdf[tail])
        x = tail + 0.5
        spread = float(((z - z.mean()) ** 2).sum())
        if spread > 0:
            slope = float(((z - z.mean()) * (x - x.mean())).sum()) / spread
            if slope > 0:
                return float(x.mean() - slope * z.mean()), slope, True
    return moments[0], max(moments[1], 1.0), False


def _moments(histogram: NDArray[np.int64] | NDArray[np.float64]) -> tuple[float, float]:
    total = float(histogram.sum())
    values = _THRESHOLDS[: len(histogram)]
    mean = float((values * histogram).sum() / total)
    return mean, math.sqrt(max(float((histogram * (values - mean) ** 2).sum() / total), 0.0))


def _log10_sum(
    shares: NDArray[np.float64], mus: NDArray[np.float64], sigmas: NDArray[np.float64]
) -> NDArray[np.float64]:
    """log10 of sum_k share_k Φ((t + 0.5 - mu_k) / sigma_k), t = 0..256."""
    z = (_THRESHOLDS[None, :] + 0.5 - mus[:, None]) / sigmas[:, None]
    terms = log_ndtr(z) + np.log(shares)[:, None]
    return _floored(np.logaddexp.reduce(terms, axis=0) / _LN10)


def fit_tail(
    distances: NDArray[np.integer[Any]],
    *,
    set_name: str,
    method: str,
    signal_type: str = "pdq",
    kinds: Sequence[KindPairs] | None = None,
    uploads_ok: NDArray[np.bool_] | None = None,
    quality_floor: int | None = None,
    replicates: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    judged_at: int = 31,
) -> TailFit:
    """Fit the lower tail of a set's unrelated-pair distances, with a bootstrap over photos.

    `distances` is the (n, n) matrix of the smallest distance from reference i to upload j;
    the diagonal (a photo with itself) is ignored, and so are the uploads where `uploads_ok`
    is False (the harness leaves out uploads under the quality floor, which the matcher does
    not match; `quality_floor` records that floor). `kinds` are the method's kinds of code
    pair (`lightkeeper.evaluation.pairs.unrelated_pairs`, with the same `uploads_ok`), each
    fitted and summed; without, the matrix is the one kind. The heaviest kind is the one
    that weighs most at `judged_at` bits. Needs at least one pair.
    """
    n = distances.shape[0]
    if distances.ndim != 2 or distances.shape != (n, n) or n < 2:
        raise ValueError(f"expected a square matrix of at least 2 x 2, got {distances.shape}")
    ok = np.ones(n, dtype=np.bool_) if uploads_ok is None else np.asarray(uploads_ok, bool)
    kept = ~np.eye(n, dtype=bool) & ok[None, :]
    if not kept.any():
        raise ValueError("no pair of photos to fit")
    histogram = np.bincount(
        np.clip(distances, 0, BITS).astype(np.intp)[kept], minlength=BITS + 1
    ).astype(np.int64)
    total = float(histogram.sum())
    mean, sd = _moments(histogram)
    fitted_kinds = list(kinds) if kinds is not None else [matrix_kind(distances, ok)]
    if not fitted_kinds:
        raise ValueError("no kind of code pair to fit")

    moments = [_moments(k.histogram) for k in fitted_kinds]
    mus, sigmas = np.empty(len(fitted_kinds)), np.empty(len(fitted_kinds))
    tailed_kinds = []
    for i, kind in enumerate(fitted_kinds):
        mus[i], sigmas[i], tailed = _fit(kind.histogram.astype(np.float64), kind.pairs, moments[i])
        tailed_kinds.append(tailed)
    shares = np.array([k.pairs for k in fitted_kinds], dtype=np.float64) / total
    fitted = _log10_sum(shares, mus, sigmas)
    heaviest = int(np.argmax(np.log(shares) + log_ndtr((judged_at + 0.5 - mus) / sigmas)))

    rng = np.random.default_rng(np.random.SeedSequence([seed, n, 20_251_122]))
    curves = np.empty((replicates, BITS + 1))
    boot_mu, boot_sigma = np.empty(replicates), np.empty(replicates)
    for r in range(replicates):
        weight = np.bincount(rng.integers(0, n, size=n), minlength=n).astype(np.float64)
        weighted_ok = weight * ok
        all_weight = float(weight.sum() * weighted_ok.sum() - (weight * weighted_ok).sum())
        if all_weight <= 0:  # every draw the same photo: no pair at all
            curves[r], boot_mu[r], boot_sigma[r] = fitted, mus[heaviest], sigmas[heaviest]
            continue
        r_shares = np.zeros(len(fitted_kinds))
        r_mus, r_sigmas = mus.copy(), sigmas.copy()
        for i, kind in enumerate(fitted_kinds):
            kind_weight = kind.weight(weight)
            if kind_weight <= 0:
                continue
            r_shares[i] = kind_weight / all_weight
            if tailed_kinds[i]:  # a resample too thin to fit keeps the kind's own fit
                r_mus[i], r_sigmas[i], _ = _fit(
                    kind.tail_histogram(weight), kind_weight, (mus[i], sigmas[i])
                )
            elif kind.cutoff == BITS:  # a kind too small for a tail fit: its moments
                mean_r, sd_r = _moments(kind.tail_histogram(weight))
                r_mus[i], r_sigmas[i] = mean_r, max(sd_r, 1.0)
        present = r_shares > 0
        curves[r] = (
            _log10_sum(r_shares[present], r_mus[present], r_sigmas[present])
            if present.any()
            else LOG10_FLOOR
        )
        boot_mu[r], boot_sigma[r] = r_mus[heaviest], r_sigmas[heaviest]
    if replicates:
        upper = np.quantile(curves, confidence, axis=0)
        low, high = 1 - confidence, confidence
        mu_interval = tuple(float(v) for v in np.quantile(boot_mu, [low, high]))
        sigma_interval = tuple(float(v) for v in np.quantile(boot_sigma, [low, high]))
    else:
        upper = fitted.copy()
        mu_interval = (mus[heaviest], mus[heaviest])
        sigma_interval = (sigmas[heaviest], sigmas[heaviest])
    observed = np.cumsum(histogram)
    with np.errstate(divide="ignore"):
        seen = np.where(observed > 0, np.log10(np.maximum(observed, 1) / total), LOG10_FLOOR)
    upper = np.maximum.accumulate(np.maximum(np.maximum(upper, fitted), seen))
    return TailFit(
        set=set_name,
        method=method,
        signal_type=signal_type,
        photos=n,
        pairs=int(total),
        quality_floor=quality_floor,
        mean=mean,
        sd=sd,
        mu=float(mus[heaviest]),
        sigma=float(sigmas[heaviest]),
        model="lower-tail normal" if tailed_kinds[heaviest] else "moments",
        mu_interval=(float(mu_interval[0]), float(mu_interval[1])),
        sigma_interval=(float(sigma_interval[0]), float(sigma_interval[1])),
        replicates=replicates,
        confidence=confidence,
        log10_p=tuple(float(v) for v in fitted),
        log10_p_upper=tuple(float(v) for v in upper),
        observed=tuple(int(v) for v in observed),
        kinds=len(fitted_kinds),
        heaviest=fitted_kinds[heaviest].name,
    )


@dataclass(frozen=True)
class Recommendation:
    """The largest threshold that keeps expected false matches a day under the target."""

    set: str
    method: str
    signal_type: str
    list_size: int
    uploads_per_day: int
    target: float
    #: None when not even threshold 0 meets the target.
    threshold: int | None
    #: Expected false matches a day at `threshold`, from the pessimistic bound.
    expected_per_day: float | None
    #: The same at the signal type's default threshold (31 for PDQ), for comparison.
    default_threshold: int
    expected_at_default: float

    def to_json(self) -> dict[str, Any]:
        return {
            "set": self.set,
            "method": self.method,
            "signal_type": self.signal_type,
            "list_size": self.list_size,
            "uploads_per_day": self.uploads_per_day,
            "target": self.target,
            "threshold": self.threshold,
            "expected_per_day": self.expected_per_day,
            "default_threshold": self.default_threshold,
            "expected_at_default": self.expected_at_default,
        }


def recommend(
    fit: TailFit,
    list_size: int,
    uploads_per_day: int,
    target: float = DEFAULT_TARGET,
    default_threshold: int = 31,
) -> Recommendation:
    """The largest t with ``uploads_per_day * list_size * p_upper(t) <= target``."""
    if list_size < 1 or uploads_per_day < 1 or not target > 0:
        raise ValueError("list size and uploads a day must be positive, and the target > 0")
    budget = math.log10(target) - math.log10(list_size) - math.log10(uploads_per_day)
    threshold: int | None = None
    for t in range(BITS + 1):
        if fit.log10_p_upper[t] <= budget:
            threshold = t
        else:
            break
    scale = float(list_size) * float(uploads_per_day)
    return Recommendation(
        set=fit.set,
        method=fit.method,
        signal_type=fit.signal_type,
        list_size=list_size,
        uploads_per_day=uploads_per_day,
        target=target,
        threshold=threshold,
        expected_per_day=None if threshold is None else scale * fit.p_upper(threshold),
        default_threshold=default_threshold,
        expected_at_default=scale * fit.p_upper(default_threshold),
    )


def calibration_table(
    fits: Iterable[TailFit],
    *,
    list_sizes: Sequence[int] = LIST_SIZES,
    uploads_per_day: Sequence[int] = UPLOADS_PER_DAY,
    target: float = DEFAULT_TARGET,
    default_threshold: int = 31,
) -> list[Recommendation]:
    """`recommend` for every fit, list size and upload volume, in that nesting order."""
    return [
        recommend(fit, n, u, target, default_threshold)
        for fit in fits
        for n in list_sizes
        for u in uploads_per_day
    ]
