"""Threshold calibration: the fitted tail, its pessimistic bound, and the recommendation."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightkeeper.evaluation.calibration import (
    LIST_SIZES,
    LOG10_FLOOR,
    UPLOADS_PER_DAY,
    TailFit,
    _log10_sum,
    calibration_table,
    fit_tail,
    recommend,
)


def normal_pairs(n: int, mean: float, sd: float, seed: int = 0) -> np.ndarray:
    """A symmetric matrix of rounded normal distances between n photos."""
    rng = np.random.default_rng(seed)
    upper = np.triu(np.rint(rng.normal(mean, sd, (n, n))), 1)
    return np.clip(upper + upper.T, 0, 256).astype(np.int16)


@pytest.fixture(scope="module")
def normal_fit() -> TailFit:
    return fit_tail(normal_pairs(240, 120.0, 12.0), set_name="s", method="pdq", replicates=60)


def test_a_normal_set_gives_back_its_mean_and_spread(normal_fit: TailFit) -> None:
    assert normal_fit.model == "lower-tail normal"
    assert normal_fit.pairs == 240 * 239
    assert normal_fit.mu == pytest.approx(120, abs=2.5)  # from the far tail alone
    assert normal_fit.sigma == pytest.approx(12, rel=0.15)
    assert normal_fit.mean == pytest.approx(120, abs=0.5)
    assert normal_fit.mu_interval[0] <= normal_fit.mu <= normal_fit.mu_interval[1]
    assert normal_fit.sigma_interval[0] <= normal_fit.sigma <= normal_fit.sigma_interval[1]


def test_the_fitted_tail_is_the_normal_cdf(normal_fit: TailFit) -> None:
    model = NormalDist(normal_fit.mu, normal_fit.sigma)
    for t in (60, 80, 100):
        assert normal_fit.log10_p[t] == pytest.approx(math.log10(model.cdf(t + 0.5)), abs=1e-6)


def test_the_bound_is_pessimistic_and_grows_with_the_threshold(normal_fit: TailFit) -> None:
    upper, fitted = np.array(normal_fit.log10_p_upper), np.array(normal_fit.log10_p)
    assert (upper >= fitted).all()
    assert (np.diff(upper) >= 0).all()
    assert upper[31] > fitted[31]  # the bootstrap spread shows in the far tail


def test_observed_counts_are_ordered_pairs_within_each_threshold(normal_fit: TailFit) -> None:
    assert normal_fit.observed[-1] == normal_fit.pairs
    assert list(normal_fit.observed) == sorted(normal_fit.observed)


def test_a_measured_close_pair_is_never_argued_away() -> None:
    matrix = normal_pairs(200, 128.0, 10.0, seed=1)
    matrix[3, 7] = matrix[7, 3] = 12
    fit = fit_tail(matrix, set_name="astro", method="pdq", replicates=30)
    # The model alone puts 12 bits beyond 10 sigma; the pair was seen, so the bound holds it.
    assert fit.log10_p[12] < -20
    assert fit.p_upper(12) == pytest.approx(2 / fit.pairs)  # both directions of the pair
    budget = math.log10(0.01 / (1_000 * 1_000))
    assert max(t for t in range(257) if fit.log10_p[t] <= budget) > 12  # the model alone
    assert recommend(fit, 1_000, 1_000).threshold == 11  # the measured pair


def test_only_valid_pairs_are_fitted() -> None:
    matrix = normal_pairs(30, 128.0, 10.0, seed=2)
    matrix[:, 0] = matrix[0, :] = 0  # photo 0 is "close" to everything …
    uploads_ok = np.ones(30, dtype=bool)
    uploads_ok[0] = False  # … but never an upload that could match
    fit = fit_tail(
        matrix, set_name="s", method="pdq", uploads_ok=uploads_ok, quality_floor=50, replicates=5
    )
    assert fit.pairs == 29 * 29  # every upload but photo 0, against the 29 others
    assert fit.observed[0] == 29  # photo 0 as the reference of each valid upload
    assert fit.quality_floor == 50
    with pytest.raises(ValueError, match="no pair"):
        fit_tail(matrix, set_name="s", method="pdq", uploads_ok=np.zeros(30, dtype=bool))


def test_tiny_sets_fall_back_to_mean_and_spread() -> None:
    fit = fit_tail(normal_pairs(5, 128.0, 10.0), set_name="s", method="pdq", replicates=10)
    assert fit.model == "moments"
    assert fit.mu == pytest.approx(fit.mean)


def test_the_bootstrap_is_reproducible() -> None:
    matrix = normal_pairs(40, 128.0, 10.0)
    first = fit_tail(matrix, set_name="s", method="pdq", replicates=20, seed=3)
    assert fit_tail(matrix, set_name="s", method="pdq", replicates=20, seed=3) == first


def test_needs_a_square_matrix_of_two_photos_or_more() -> None:
    with pytest.raises(ValueError, match="square"):
        fit_tail(np.zeros((1, 1), dtype=np.int16), set_name="s", method="pdq")
    with pytest.raises(ValueError, match="square"):
        fit_tail(np.zeros((2, 3), dtype=np.int16), set_name="s", method="pdq")


def test_the_tail_is_accurate_far_beyond_what_floats_near_1_hold() -> None:
    one = np.ones(1)
    for mu, sigma in ((120.0, 12.0), (128.0, 3.0)):
        curve = _log10_sum(one, np.array([mu]), np.array([sigma]))
        for t in (100, 60, 20):
            x = (t + 0.5 - mu) / sigma
            exact = 0.5 * math.erfc(-x / math.sqrt(2))
            if exact > 0:
                assert curve[t] == pytest.approx(math.log10(exact), rel=1e-9)
            else:  # past what a float holds: the asymptotic series
                series = -(x * x / 2 + math.log(-x) + 0.5 * math.log(2 * math.pi)) / math.log(10)
                assert curve[t] == pytest.approx(max(series, LOG10_FLOOR), abs=0.01)
    assert _log10_sum(one, np.array([250.0]), np.array([1.0]))[0] == LOG10_FLOOR


def test_kinds_add_up_by_their_share_of_the_pairs() -> None:
    mus, sigmas = np.array([120.0, 120.0]), np.array([10.0, 10.0])
    alone = _log10_sum(np.ones(1), mus[:1], sigmas[:1])
    # Two kinds alike, each on half the pairs, are one kind on all of them …
    assert np.allclose(_log10_sum(np.array([0.5, 0.5]), mus, sigmas), alone)
    # … and a kind on every pair beside it doubles the chance.
    assert np.allclose(_log10_sum(np.array([1.0, 1.0]), mus, sigmas), alone + math.log10(2))


def test_the_recommendation_is_the_largest_threshold_under_the_target(normal_fit: TailFit) -> None:
    rec = recommend(normal_fit, 13_400_000, 1_000_000, target=0.01)
    assert rec.threshold is not None
    scale = 13_400_000 * 1_000_000
    assert rec.expected_per_day == pytest.approx(scale * normal_fit.p_upper(rec.threshold))
    assert rec.expected_per_day <= 0.01
    assert scale * normal_fit.p_upper(rec.threshold + 1) > 0.01
    assert rec.expected_at_default == pytest.approx(scale * normal_fit.p_upper(31))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=10**9),
    u=st.integers(min_value=1, max_value=10**9),
    target=st.floats(min_value=1e-6, max_value=10.0),
    factor=st.integers(min_value=2, max_value=1000),
)
def test_more_hashes_or_uploads_never_allow_a_larger_threshold(
    normal_fit: TailFit, n: int, u: int, target: float, factor: int
) -> None:
    def threshold(n: int, u: int, target: float) -> int:
        found = recommend(normal_fit, n, u, target).threshold
        return -1 if found is None else found

    base = threshold(n, u, target)
    assert threshold(n * factor, u, target) <= base
    assert threshold(n, u * factor, target) <= base
    assert threshold(n, u, target * factor) >= base


def test_no_threshold_when_even_identical_hashes_are_too_many() -> None:
    matrix = np.zeros((6, 6), dtype=np.int16)  # six copies of one photo
    fit = fit_tail(matrix, set_name="dupes", method="pdq", replicates=5)
    rec = recommend(fit, 1_000_000, 1_000_000)
    assert rec.threshold is None and rec.expected_per_day is None


def test_recommend_refuses_meaningless_volumes(normal_fit: TailFit) -> None:
    with pytest.raises(ValueError, match="positive"):
        recommend(normal_fit, 0, 1_000)
    with pytest.raises(ValueError, match="target"):
        recommend(normal_fit, 1_000, 1_000, target=0.0)


def test_the_table_covers_every_list_size_and_upload_volume(normal_fit: TailFit) -> None:
    table = calibration_table([normal_fit])
    assert [(r.list_size, r.uploads_per_day) for r in table] == [
        (n, u) for n in LIST_SIZES for u in UPLOADS_PER_DAY
    ]
    assert LIST_SIZES == (1_000_000, 13_400_000, 100_000_000)
    assert UPLOADS_PER_DAY == (1_000_000, 100_000_000)


def test_a_fit_round_trips_through_json(normal_fit: TailFit) -> None:
    assert TailFit.from_json(normal_fit.to_json()) == normal_fit
