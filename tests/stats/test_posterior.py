"""Tests for octobandit.stats.posterior against closed forms and independent integrations.

Tolerances
----------
* Truncation: every arm's support leaves out at most 1e-12 of mass per side, so truncation
  moves a probability by at most ~2 K 1e-12.
* Discretisation: the composite Gauss–Legendre rule converges geometrically on panels that
  resolve every arm; with the default budget the contract is 1e-6 and the tests ask for
  1e-8 (100x margin) unless a looser bound follows from an approximation (normal limits).
* Reference integrations use ``scipy.integrate.quad`` with ``epsabs`` ~1e-14 split at the arms'
  quantiles, so their own error is far below the tolerances asserted.
"""

from __future__ import annotations

import doctest
import functools
import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import integrate, special, stats

from octobandit.stats import posterior
from octobandit.stats.posterior import (
    beta_credible_interval,
    beta_expected_loss,
    beta_prob_best,
    prob_best_monte_carlo,
    student_t_credible_interval,
    student_t_expected_loss,
    student_t_prob_best,
)

QUAD_TOL = 1e-8  # 100x tighter than the 1e-6 accuracy contract


# --------------------------------------------------------------------------------------------
# independent references
# --------------------------------------------------------------------------------------------


def exact_two_beta(a_a: int, b_a: int, a_b: int, b_b: int) -> float:
    """P(θ_B > θ_A) for integer parameters (closed form summed in log space)."""
    i = np.arange(a_b, dtype=np.float64)
    log_terms = (
        special.betaln(a_a + i, b_a + b_b)
        - np.log(b_b + i)
        - special.betaln(1.0 + i, b_b)
        - special.betaln(a_a, b_a)
    )
    return float(np.exp(special.logsumexp(log_terms)))


def _piecewise_quad(func: Callable[[float], float], edges: list[float]) -> float:
    total = 0.0
    for left, right in itertools.pairwise(edges):
        if right > left:
            total += integrate.quad(func, left, right, epsabs=1e-14, epsrel=1e-12, limit=500)[0]
    return total


def _logit_quantile(a: float, b: float, q: float) -> float:
    if q < 0.5:
        x = float(special.betaincinv(a, b, q))
        return math.log(x) - math.log1p(-x)
    x = float(special.betaincinv(b, a, 1.0 - q))  # 1 - θ ~ Beta(b, a)
    return math.log1p(-x) - math.log(x)


def _beta_cdf_at_logit(a: float, b: float, y: float) -> float:
    if y <= 0.0:
        return float(special.betainc(a, b, special.expit(y)))
    return float(special.betaincc(b, a, special.expit(-y)))


def beta_prob_best_quad(alpha: list[float], beta: list[float]) -> np.ndarray:
    """P(best) by adaptive quadrature in logit space, split at every arm's quantiles."""
    k = len(alpha)
    qs = [1e-14, 1e-8, 1e-4, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 1 - 1e-4, 1 - 1e-8, 1 - 1e-14]
    edges = sorted({_logit_quantile(a, b, q) for a, b in zip(alpha, beta, strict=True) for q in qs})
    out = np.empty(k)
    for i in range(k):

        def integrand(y: float, i: int = i) -> float:
            a, b = alpha[i], beta[i]
            value = math.exp(
                a * special.log_expit(y) + b * special.log_expit(-y) - special.betaln(a, b)
            )
            for j in range(k):
                if j != i:
                    value *= _beta_cdf_at_logit(alpha[j], beta[j], y)
            return value

        out[i] = _piecewise_quad(integrand, edges)
    return out


def _t_logpdf(x: float, df: float, loc: float, scale: float) -> float:
    z = (x - loc) / scale
    return (
        math.lgamma((df + 1.0) / 2.0)
        - math.lgamma(df / 2.0)
        - 0.5 * math.log(df * math.pi)
        - math.log(scale)
        - (df + 1.0) / 2.0 * math.log1p(z * z / df)
    )


def t_quad(
    loc: list[float], scale: list[float], df: list[float], *, with_mean: bool = False
) -> tuple[np.ndarray, float]:
    """P(best) and, if asked, E[max] for Student-t arms by adaptive quadrature."""
    k = len(loc)
    steps = [-1e3, -64.0, -16.0, -8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 64.0, 1e3]
    points = sorted({m + s * t for m, s in zip(loc, scale, strict=True) for t in steps})
    edges = [-math.inf, *points, math.inf]
    probs = np.empty(k)
    e_max = 0.0
    for i in range(k):

        def integrand(x: float, i: int = i, power: int = 0) -> float:
            value = math.exp(_t_logpdf(x, df[i], loc[i], scale[i])) * x**power
            for j in range(k):
                if j != i:
                    value *= float(special.stdtr(df[j], (x - loc[j]) / scale[j]))
            return value

        probs[i] = _piecewise_quad(integrand, edges)
        if with_mean:
            e_max += _piecewise_quad(functools.partial(integrand, i=i, power=1), edges)
    return probs, e_max


def normal_two_arm(mu: tuple[float, float], sd: tuple[float, float]) -> float:
    """P(X_1 > X_0) for independent normals."""
    return float(special.ndtr((mu[1] - mu[0]) / math.hypot(sd[0], sd[1])))


# --------------------------------------------------------------------------------------------
# beta_prob_best
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a_a", "b_a", "a_b", "b_b"),
    [
        (1, 1, 1, 1),
        (2, 3, 4, 5),
        (10, 20, 15, 18),
        (3, 1, 1, 3),
        (100, 900, 120, 880),
        (1, 1, 5000, 5000),  # flat vs very concentrated
        (5000, 5000, 1, 1),
        (1, 30, 2, 40),  # mass piled up near 0
        (20_000, 80_000, 20_100, 79_900),  # concentrated and close
    ],
)
def test_two_beta_arms_match_closed_form(a_a: int, b_a: int, a_b: int, b_b: int) -> None:
    p = beta_prob_best([a_a, a_b], [b_a, b_b])
    expected = exact_two_beta(a_a, b_a, a_b, b_b)
    assert p[1] == pytest.approx(expected, abs=QUAD_TOL)
    assert p[0] == pytest.approx(1.0 - expected, abs=QUAD_TOL)


def test_uniform_arms_are_exactly_even() -> None:
    assert beta_prob_best([1, 1], [1, 1]).tolist() == [0.5, 0.5]


@pytest.mark.parametrize(
    ("alpha", "beta"),
    [
        ([2.0, 3.0, 4.0], [5.0, 5.0, 5.0]),
        ([10.0, 12.0, 14.0, 16.0], [90.0, 88.0, 86.0, 84.0]),
        ([0.5, 0.5, 2.0], [0.5, 100.5, 30.0]),  # Jeffreys-like priors, alpha < 1
        ([1.0, 50.0, 5000.0, 2.0], [1.0, 50.0, 5000.0, 3.0]),
        ([200.0, 2000.0, 20000.0], [800.0, 8000.0, 80000.0]),  # same mean, widths x10
        ([1.5, 40.0, 400.0, 4000.0], [3.5, 60.0, 600.0, 6000.0]),
    ],
)
def test_several_beta_arms_match_quad(alpha: list[float], beta: list[float]) -> None:
    reference = beta_prob_best_quad(alpha, beta)
    # the reference leaves out < 2K * 1e-14 of mass; its sum is 1 to that level
    assert reference.sum() == pytest.approx(1.0, abs=1e-10)
    np.testing.assert_allclose(beta_prob_best(alpha, beta), reference, rtol=0, atol=QUAD_TOL)


def test_more_nodes_converge() -> None:
    alpha, beta = [0.5, 3.0, 40.0, 400.0], [0.7, 9.0, 100.0, 1100.0]
    coarse = beta_prob_best(alpha, beta)
    fine = beta_prob_best(alpha, beta, nodes=384)
    np.testing.assert_allclose(coarse, fine, rtol=0, atol=QUAD_TOL)


@pytest.mark.parametrize("k", [1, 2, 3, 7, 10])
def test_identical_arms_share_evenly(k: int) -> None:
    p = beta_prob_best(np.full(k, 37.0), np.full(k, 420.0))
    np.testing.assert_allclose(p, np.full(k, 1.0 / k), rtol=0, atol=1e-12)


def test_single_arm_is_certainly_best() -> None:
    assert beta_prob_best([3.0], [4.0]).tolist() == [1.0]


def test_permutation_equivariance() -> None:
    rng = np.random.default_rng(7)
    alpha = rng.uniform(1.0, 300.0, size=6)
    beta = rng.uniform(1.0, 300.0, size=6)
    p = beta_prob_best(alpha, beta)
    for _ in range(5):
        perm = rng.permutation(6)
        np.testing.assert_allclose(beta_prob_best(alpha[perm], beta[perm]), p[perm], atol=1e-13)


def test_reflection_symmetry() -> None:
    # 1 - θ ~ Beta(b, a): the best arm for θ is the worst for 1 - θ, with two arms
    p = beta_prob_best([3.0, 40.0], [7.0, 60.0])
    q = beta_prob_best([7.0, 60.0], [3.0, 40.0])
    assert p[0] == pytest.approx(q[1], abs=QUAD_TOL)


def test_mask_excludes_arms() -> None:
    alpha = np.array([5.0, 50.0, 9.0, 900.0])
    beta = np.array([5.0, 40.0, 3.0, 100.0])
    mask = np.array([True, False, True, False])
    p = beta_prob_best(alpha, beta, mask=mask)
    assert p[1] == 0.0
    assert p[3] == 0.0
    np.testing.assert_allclose(p[mask], beta_prob_best(alpha[mask], beta[mask]), atol=1e-14)
    assert p.sum() == pytest.approx(1.0, abs=1e-14)


def test_mask_broadcasts_over_rows() -> None:
    alpha = np.array([[2.0, 3.0, 4.0], [20.0, 30.0, 40.0]])
    beta = np.array([[5.0, 5.0, 5.0], [50.0, 50.0, 50.0]])
    mask = np.array([True, True, False])
    p = beta_prob_best(alpha, beta, mask=mask)
    assert (p[:, 2] == 0.0).all()
    for r in range(2):
        np.testing.assert_allclose(p[r, :2], beta_prob_best(alpha[r, :2], beta[r, :2]), atol=1e-13)


@pytest.mark.parametrize(
    ("arm_a", "arm_b"),
    [
        ((100_000.0, 100_000.0), (100_200.0, 99_800.0)),
        ((100_000.0, 400_000.0), (100_300.0, 400_000.0)),
        ((1_000_000.0, 1_000_000.0), (1_000_500.0, 999_500.0)),
        ((300_000.0, 700_000.0), (120_000.0, 280_000.0)),  # same mean, different widths
    ],
)
def test_concentrated_beta_matches_normal_limit(
    arm_a: tuple[float, float], arm_b: tuple[float, float]
) -> None:
    def moments(a: float, b: float) -> tuple[float, float, float]:
        n = a + b
        mean = a / n
        sd = math.sqrt(a * b / (n * n * (n + 1.0)))
        skew = 2.0 * (b - a) * math.sqrt(n + 1.0) / ((n + 2.0) * math.sqrt(a * b))
        return mean, sd, skew

    mu_a, sd_a, g_a = moments(*arm_a)
    mu_b, sd_b, g_b = moments(*arm_b)
    p = beta_prob_best([arm_a[0], arm_b[0]], [arm_a[1], arm_b[1]])
    # First Edgeworth term of P(θ_B - θ_A > 0): (γ_D / 6)(z² - 1) φ(z) with
    # |γ_D| <= |γ_A| + |γ_B| and |(z² - 1) φ(z)| <= φ(0) < 0.4; the next terms are
    # O(1 / (α + β)) < 1e-5 here.
    tol = 0.4 / 6.0 * (abs(g_a) + abs(g_b)) + 1e-5
    assert p[1] == pytest.approx(normal_two_arm((mu_a, mu_b), (sd_a, sd_b)), abs=tol)
    # and the quadrature itself stays exact there
    if arm_a[0] + arm_a[1] <= 1e6:
        expected = exact_two_beta(*(int(v) for v in (*arm_a, *arm_b)))
        assert p[1] == pytest.approx(expected, abs=QUAD_TOL)


def test_two_d_rows_match_one_d_calls() -> None:
    rng = np.random.default_rng(11)
    alpha = 10 ** rng.uniform(0.0, 4.0, size=(6, 5))
    beta = 10 ** rng.uniform(0.0, 4.0, size=(6, 5))
    p = beta_prob_best(alpha, beta)
    loss = beta_expected_loss(alpha, beta)
    assert p.shape == loss.shape == (6, 5)
    for r in range(6):
        np.testing.assert_allclose(p[r], beta_prob_best(alpha[r], beta[r]), rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            loss[r], beta_expected_loss(alpha[r], beta[r]), rtol=0, atol=1e-12
        )


def test_leading_dimensions_are_preserved() -> None:
    alpha = np.full((2, 3, 4), 5.0)
    assert beta_prob_best(alpha, 7.0 * np.ones(4)).shape == (2, 3, 4)


# --------------------------------------------------------------------------------------------
# student_t_prob_best
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("df", [1.0, 2.5, 7.0, 1e4, math.inf])
def test_t_equal_locations_are_even(df: float) -> None:
    same = student_t_prob_best([1.5, 1.5], [2.0, 2.0], df)
    np.testing.assert_allclose(same, [0.5, 0.5], rtol=0, atol=1e-14)
    # X_0 - X_1 is symmetric about 0 for any scales, so still 1/2
    wide = student_t_prob_best([1.5, 1.5], [0.2, 2.0], df)
    np.testing.assert_allclose(wide, [0.5, 0.5], rtol=0, atol=QUAD_TOL)


@pytest.mark.parametrize(
    ("loc", "scale", "df"),
    [
        ([0.0, 1.0], [1.0, 1.0], [3.0, 3.0]),
        ([0.0, 0.1, 0.2], [1.0, 0.01, 3.0], [2.5, 30.0, 4.0]),
        ([0.0, 0.0, 0.0], [1.0, 2.0, 0.5], [1.5, 1.5, 1.5]),
        ([0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0], [2.1, 3.0, 5.0, 1e6]),
        ([5.0, 0.0, 1e-3], [1e-3, 10.0, 1.0], [3.0, 100.0, 1e4]),
    ],
)
def test_t_matches_quad(loc: list[float], scale: list[float], df: list[float]) -> None:
    reference, _ = t_quad(loc, scale, df)
    np.testing.assert_allclose(
        student_t_prob_best(loc, scale, df), reference / reference.sum(), rtol=0, atol=QUAD_TOL
    )


def test_t_large_df_matches_normal() -> None:
    loc, scale = (0.0, 0.7), (1.0, 1.5)
    expected = normal_two_arm(loc, scale)
    exact_normal = student_t_prob_best(loc, scale, math.inf)
    assert exact_normal[1] == pytest.approx(expected, abs=QUAD_TOL)
    # t_df differs from the normal by O(1/df) in distribution: 1e-7 for df = 1e7
    assert student_t_prob_best(loc, scale, 1e7)[1] == pytest.approx(expected, abs=1e-6)
    # and converges monotonically enough to be visibly closer as df grows
    gaps = [abs(student_t_prob_best(loc, scale, df)[1] - expected) for df in (3.0, 30.0, 300.0)]
    assert gaps[0] > gaps[1] > gaps[2]


def test_t_mask_and_rows() -> None:
    rng = np.random.default_rng(5)
    loc = rng.normal(size=(4, 5))
    scale = 10 ** rng.uniform(-1.0, 1.0, size=(4, 5))
    df = 10 ** rng.uniform(0.3, 3.0, size=(4, 5))
    mask = rng.random((4, 5)) < 0.7
    mask[:, 0] = True
    p = student_t_prob_best(loc, scale, df, mask=mask)
    assert (p[~mask] == 0.0).all()
    for r in range(4):
        m = mask[r]
        expected = student_t_prob_best(loc[r, m], scale[r, m], df[r, m])
        np.testing.assert_allclose(p[r, m], expected, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# expected loss
# --------------------------------------------------------------------------------------------


def beta_e_max_quad(alpha: list[float], beta: list[float]) -> float:
    """E[max θ] = ∫_0^1 (1 - ∏ F_j(x)) dx, split at the arms' quantiles."""
    qs = [1e-10, 1e-4, 0.01, 0.1, 0.5, 0.9, 0.99, 1 - 1e-4, 1 - 1e-10]
    edges = sorted(
        {0.0, 1.0}
        | {float(special.betaincinv(a, b, q)) for a, b in zip(alpha, beta, strict=True) for q in qs}
    )

    def survival(x: float) -> float:
        return 1.0 - float(np.prod(special.betainc(alpha, beta, x)))

    return _piecewise_quad(survival, edges)


@pytest.mark.parametrize(
    ("alpha", "beta"),
    [
        ([2.0, 3.0], [5.0, 4.0]),
        ([30.0, 45.0], [70.0, 55.0]),
        ([1.0, 5000.0], [1.0, 5000.0]),
        ([0.5, 3.0, 30.0], [0.5, 30.0, 300.0]),
        ([1e5, 1.001e5], [1e5, 0.999e5]),
    ],
)
def test_beta_expected_loss_matches_quad(alpha: list[float], beta: list[float]) -> None:
    e_max = beta_e_max_quad(alpha, beta)
    expected = e_max - np.asarray(alpha) / (np.asarray(alpha) + np.asarray(beta))
    loss = beta_expected_loss(alpha, beta)
    np.testing.assert_allclose(loss, np.maximum(expected, 0.0), rtol=0, atol=1e-10)
    assert (loss >= 0.0).all()


def test_beta_expected_loss_uniform_closed_form() -> None:
    # max of two iid U(0,1) has density 2x, so E[max] = 2/3 and the loss is 2/3 - 1/2 = 1/6
    np.testing.assert_allclose(beta_expected_loss([1, 1], [1, 1]), [1 / 6, 1 / 6], atol=1e-12)
    # K iid uniforms: E[max] = K / (K + 1)
    np.testing.assert_allclose(
        beta_expected_loss(np.ones(5), np.ones(5)), np.full(5, 5 / 6 - 1 / 2), atol=1e-12
    )


def test_beta_expected_loss_uniform_against_beta_closed_form() -> None:
    # U ~ Beta(1, 1) against θ ~ Beta(a, b): E[max(U, θ) - θ] = E[(U - θ)^+] = E[(1 - θ)^2] / 2,
    # with 1 - θ ~ Beta(b, a): E[(1 - θ)^2] = b (b + 1) / ((a + b)(a + b + 1)).  The third arm is
    # masked out and must not count.
    a, b = 900.0, 100.0
    loss = beta_expected_loss([1.0, a, 5.0], [1.0, b, 5.0], mask=[True, True, False])
    loss_theta = b * (b + 1.0) / ((a + b) * (a + b + 1.0)) / 2.0
    assert loss[2] == math.inf
    assert loss[1] == pytest.approx(loss_theta, abs=1e-10)
    # E[max] = E[θ] + loss_theta, and the uniform arm's mean is 1/2
    assert loss[0] == pytest.approx(a / (a + b) + loss_theta - 0.5, abs=1e-10)


@pytest.mark.parametrize(
    ("loc", "scale", "df"),
    [
        ([0.0, 1.0], [1.0, 1.0], [3.0, 3.0]),
        ([0.0, 0.1, 0.2], [1.0, 0.01, 3.0], [2.5, 30.0, 4.0]),
        ([0.0, 0.5], [1.0, 2.0], [1.5, 1.5]),
        ([10.0, 11.0, 9.0], [0.5, 2.0, 1.0], [50.0, 8.0, 1e5]),
    ],
)
def test_t_expected_loss_matches_quad(
    loc: list[float], scale: list[float], df: list[float]
) -> None:
    _, e_max = t_quad(loc, scale, df, with_mean=True)
    expected = e_max - np.asarray(loc)
    np.testing.assert_allclose(
        student_t_expected_loss(loc, scale, df), expected, rtol=0, atol=QUAD_TOL * max(scale)
    )


def test_t_expected_loss_normal_closed_form() -> None:
    # E[max(X, Y)] for iid N(0, σ²) is σ / sqrt(π)
    loss = student_t_expected_loss([0.0, 0.0], [2.0, 2.0], math.inf)
    np.testing.assert_allclose(loss, [2.0 / math.sqrt(math.pi)] * 2, rtol=0, atol=1e-10)


def test_t_expected_loss_needs_a_mean() -> None:
    with pytest.raises(ValueError, match="df must be > 1"):
        student_t_expected_loss([0.0, 1.0], [1.0, 1.0], [1.0, 5.0])
    # an excluded arm does not need one
    loss = student_t_expected_loss([0.0, 1.0], [1.0, 1.0], [0.5, 5.0], mask=[False, True])
    assert loss.tolist() == [math.inf, 0.0]


# --------------------------------------------------------------------------------------------
# credible intervals
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [0.5, 0.9, 0.95, 0.999])
def test_beta_credible_interval_matches_scipy(level: float) -> None:
    alpha = np.array([0.5, 1.0, 3.0, 250.0, 1e5])
    beta = np.array([0.5, 9.0, 3.0, 750.0, 3e5])
    lower, upper = beta_credible_interval(alpha, beta, level)
    tail = (1.0 - level) / 2.0
    np.testing.assert_allclose(lower, stats.beta.ppf(tail, alpha, beta), rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(upper, stats.beta.ppf(1 - tail, alpha, beta), rtol=1e-9)
    assert (lower < upper).all()


@pytest.mark.parametrize("level", [0.5, 0.9, 0.95, 0.999])
def test_t_credible_interval_matches_scipy(level: float) -> None:
    loc = np.array([0.0, -3.0, 10.0, 2.0])
    scale = np.array([1.0, 0.1, 5.0, 2.0])
    df = np.array([1.0, 4.0, 30.0, 1e6])
    lower, upper = student_t_credible_interval(loc, scale, df, level)
    tail = (1.0 - level) / 2.0
    np.testing.assert_allclose(lower, stats.t.ppf(tail, df, loc, scale), rtol=1e-9)
    np.testing.assert_allclose(upper, stats.t.ppf(1 - tail, df, loc, scale), rtol=1e-9)
    lo_n, hi_n = student_t_credible_interval(0.0, 1.0, math.inf, level)
    assert float(hi_n) == pytest.approx(stats.norm.ppf(1 - tail), rel=1e-12)
    assert float(lo_n) == pytest.approx(-float(hi_n), rel=1e-12)


# --------------------------------------------------------------------------------------------
# Monte Carlo
# --------------------------------------------------------------------------------------------


def test_monte_carlo_agrees_with_quadrature() -> None:
    alpha = np.array([12.0, 15.0, 20.0])
    beta = np.array([88.0, 85.0, 80.0])
    m = 200_000
    rng = np.random.default_rng(12345)
    samples = rng.beta(alpha, beta, size=(m, 3))
    p_mc, se = prob_best_monte_carlo(samples)
    p_quad = beta_prob_best(alpha, beta)
    np.testing.assert_allclose(se, np.sqrt(p_mc * (1.0 - p_mc) / m), rtol=1e-15)
    assert (np.abs(p_mc - p_quad) <= 5.0 * se).all()
    assert p_mc.sum() == pytest.approx(1.0, abs=1e-12)


def test_monte_carlo_batches_and_ties() -> None:
    draws = np.array([[[1.0, 1.0, 0.0], [0.0, 2.0, 2.0]], [[3.0, 3.0, 3.0], [0.0, 0.0, 5.0]]])
    p, se = prob_best_monte_carlo(draws)
    np.testing.assert_allclose(p, [[0.25, 0.5, 0.25], [1 / 6, 1 / 6, 2 / 3]], atol=1e-15)
    np.testing.assert_allclose(se, np.sqrt(p * (1 - p) / 2), atol=1e-15)


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: beta_prob_best([1.0, 0.0], [1.0, 1.0]), "alpha"),
        (lambda: beta_prob_best([1.0, 2.0], [-1.0, 1.0]), "beta"),
        (lambda: beta_prob_best([1.0, math.nan], [1.0, 1.0]), "alpha contains NaN"),
        (lambda: beta_prob_best([1.0, math.inf], [1.0, 1.0]), "alpha must be finite"),
        (lambda: beta_prob_best([1.0, 2.0], [1.0, 2.0, 3.0]), "shape mismatch"),
        (lambda: beta_prob_best(1.0, 2.0), "arm axis"),
        (lambda: beta_prob_best([1.0, 2.0], [1.0, 2.0], nodes=4), "nodes"),
        (lambda: beta_prob_best([1.0, 2.0], [1.0, 2.0], mask=[1, 0]), "mask"),
        (lambda: beta_prob_best([1.0, 2.0], [1.0, 2.0], mask=[False, False]), "mask"),
        (lambda: beta_prob_best([1.0, 2.0], [1.0, 2.0], mask=[True] * 3), "mask"),
        (lambda: beta_prob_best(["a", "b"], [1.0, 2.0]), "alpha"),
        (lambda: beta_expected_loss([1.0, 2.0], [0.0, 2.0]), "beta"),
        (lambda: student_t_prob_best([0.0, 1.0], [1.0, 0.0], 3.0), "scale"),
        (lambda: student_t_prob_best([0.0, math.nan], [1.0, 1.0], 3.0), "loc"),
        (lambda: student_t_prob_best([0.0, math.inf], [1.0, 1.0], 3.0), "loc"),
        (lambda: student_t_prob_best([0.0, 1.0], [1.0, 1.0], [3.0, -2.0]), "df"),
        (lambda: student_t_prob_best([0.0, 1.0], [1.0, 1.0], [3.0, 3.0, 3.0]), "shape mismatch"),
        (lambda: student_t_expected_loss([0.0, 1.0], [1.0, 1.0], 0.9), "df"),
        (lambda: beta_credible_interval([1.0], [1.0], level=1.0), "level"),
        (lambda: beta_credible_interval([1.0], [math.nan]), "beta"),
        (lambda: student_t_credible_interval([0.0], [1.0], [0.0]), "df"),
        (lambda: prob_best_monte_carlo([0.1, 0.2]), "samples"),
        (lambda: prob_best_monte_carlo([[0.1, math.nan]]), "samples"),
    ],
)
def test_invalid_input_raises(call: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_docstring_examples_run() -> None:
    result = doctest.testmod(posterior, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize("big", [1e8, 1e12, 1e27, 1e40])
@pytest.mark.parametrize("rel", [1e-20, 1e-16, 1e-15, 1e-14])
def test_scales_below_float_resolution_stay_finite(big: float, rel: float) -> None:
    """A scale of a few ulps of the location (or less) cannot be resolved: it is widened to
    2^-48 of the largest |location| (it returned NaN before), and P(best) stays a
    distribution."""
    s = big * rel
    for df in (2.0, 10.0, float("inf")):
        loc = [big, big + s, -big]
        p = student_t_prob_best(loc, [s, s, s], df)
        assert np.isfinite(p).all() and p.sum() == pytest.approx(1.0)
        assert p[2] == 0.0 or p[2] < 1e-12
        assert np.isfinite(student_t_expected_loss(loc, [s, 2 * s, s], df)).all()
    # equal locations, very different scales: symmetric about the same centre, P = 1/2 (it
    # was 1 and 3e-46); the scale ratio 2^-48 / 1e-3 ~ 4e-12 is far outside the ratios the
    # quadrature's 1e-8 accuracy is stated for, hence the looser tolerance
    p = student_t_prob_best([big, big], [big * 1e-50, big * 1e-3], 10.0)
    assert p.tolist() == pytest.approx([0.5, 0.5], abs=1e-3)
