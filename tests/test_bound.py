"""The convex bound of Schaipp et al.: published numbers, numerics and input checks."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest
from scipy import optimize

import lrtune.bound as bound_module
from lrtune.bound import (
    bound_terms,
    convex_schedule,
    fit_lr_sweep,
    normalized_lr,
    omega,
    omega_curve,
    optimal_base_lr,
    optimal_bound,
    suffix_sum,
)
from lrtune.schedules import parse_schedule


def brute_force_terms(a, G, D):
    """Theorem 10 term by term with exact-ish sums (math.fsum), O(T^2)."""
    a = [float(x) for x in a]
    g2 = [(x * g) ** 2 for x, g in zip(a, G)]
    T, S = len(a), math.fsum(a)
    t1 = D**2 / (2 * S)
    t2 = math.fsum(g2) / (2 * S)
    t3 = 0.5 * math.fsum(a[k] / math.fsum(a[k + 1:]) * math.fsum(g2[k:]) / math.fsum(a[k:]) for k in range(T - 1))
    return t1, t2, t3


def gamma_star(family, T, c=0.2, shape="linear"):
    return optimal_base_lr(convex_schedule(family, T, c, shape))


# -- published numbers (Schaipp et al., ICML 2025) -------------------------------------------------

def test_gamma_star_power_laws_match_published_fits():
    Ts = np.arange(200, 501, 10)
    fits = {}
    for name, fam in (("cosine", "cosine"), ("wsd", "wsd")):
        g = [gamma_star(fam, int(T)) for T in Ts]
        b, ln_a = np.polyfit(np.log(Ts), np.log(g), 1)
        fits[name] = (round(math.exp(ln_a), 3), round(b, 3))
    assert fits["cosine"] == (0.920, -0.492)
    assert fits["wsd"] == (0.471, -0.488)
    assert round(gamma_star("cosine", 400) / gamma_star("wsd", 400), 1) == 1.9


def test_longer_cooldowns_raise_gamma_star_as_published():
    T = 1000
    lin1 = math.log(gamma_star("wsd", T, 1.0))
    sq1 = math.log(gamma_star("wsd", T, 1.0, "1-sqrt"))
    linear = {c: lin1 - math.log(gamma_star("wsd", T, c)) for c in (0.1, 0.2, 0.4, 0.6, 0.8)}
    sqrt = {c: sq1 - math.log(gamma_star("wsd", T, c, "1-sqrt")) for c in (0.1, 0.2, 0.4)}
    assert [round(linear[c], 2) for c in (0.1, 0.4)] == [0.78, 0.50]
    assert [round(linear[c], 3) for c in (0.6, 0.8)] == [0.345, 0.183]
    assert 0.665 <= round(linear[0.2], 3) <= 0.670
    assert [round(sqrt[c], 2) for c in (0.1, 0.2, 0.4)] == [1.14, 1.01, 0.80]
    assert round(lin1 - math.log(gamma_star("wsd", T, 0.2, "1-sqrt")), 2) == 0.61
    # nearly independent of T
    assert abs(linear[0.2] - (math.log(gamma_star("wsd", 10_000, 1.0)) - math.log(gamma_star("wsd", 10_000, 0.2)))) < 0.003


@pytest.mark.parametrize("k,published", [(1.5, 0.625), (2, 0.525), (3, 0.425), (4, 0.375)])
def test_horizon_extension_rho_keeps_gamma_star(k, published):
    T0 = 4000
    target = math.log(gamma_star("wsd", T0))

    def gap(rho):
        eta = convex_schedule("wsd", int(k * T0), 0.2)
        eta[int(0.8 * T0):] *= rho
        return math.log(optimal_base_lr(eta)) - target

    grid = np.round(np.arange(1, 41) * 0.025, 3)
    assert min(grid, key=lambda r: abs(gap(r))) == published
    exact = optimize.brentq(gap, 0.3, 1.0)
    assert abs(exact - published) < 0.0125


def test_schaipp_124m_best_base_lr_per_cooldown_matches_published():
    from lrtune.datasets import schaipp_runs

    by = defaultdict(lambda: defaultdict(list))
    for r in schaipp_runs():
        if (r["n_layer"], r["n_embd"], r["schedule"], r["decay_type"], r["horizon"]) == ("12", "768", "wsd", "linear", "50000"):
            by[float(r["cooldown_frac"])][float(r["base_lr"])].append(float(r["final_val_loss_full"]))
    grid = np.logspace(-4, -2, 100)
    best = {}
    for c, runs in by.items():
        lrs = np.array(sorted(runs))
        fit = fit_lr_sweep(lrs, [np.mean(runs[g]) for g in lrs])
        best[c] = grid[np.argmin(fit(grid))]
        assert abs(math.log(fit.best_base_lr / best[c])) < 0.03  # the grid point is next to sqrt(a/b)
    published = {0.1: 7.4e-4, 0.2: 8.5e-4, 0.4: 1.07e-3, 0.6: 1.23e-3, 0.8: 1.42e-3, 0.9: 1.56e-3, 0.994: 1.71e-3}
    assert {c: float(f"{best[c]:.2e}") if c != 0.1 else float(f"{best[c]:.1e}") for c in published} == published
    assert round(math.log(best[0.994] / best[0.2]), 3) == 0.698


# -- the bound itself ----------------------------------------------------------------------

def test_terms_equal_theorem_10_term_by_term_with_per_step_G():
    rng = np.random.default_rng(0)
    eta = rng.uniform(0.05, 1.0, 60)
    G = rng.uniform(0.5, 2.0, 60)
    got = bound_terms(eta, G=G, D=1.7)
    want = brute_force_terms(eta, G, 1.7)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_constant_G_array_equals_scalar_G():
    eta = convex_schedule("wsd", 5000, 0.2, "1-sqrt")
    scalar = bound_terms(eta, G=2.5, D=3.0)
    array = bound_terms(eta, G=np.full(eta.size, 2.5), D=3.0)
    np.testing.assert_allclose(array, scalar, rtol=1e-13)
    # t1 scales with D^2, t2 and t3 with G^2
    base = bound_terms(eta)
    np.testing.assert_allclose(scalar, (9.0 * base[0], 6.25 * base[1], 6.25 * base[2]), rtol=1e-12)


def test_omega_is_minimised_at_gamma_star():
    eta = convex_schedule("cosine", 2000)
    g = optimal_base_lr(eta, G=2.0, D=0.5)
    t1, t2, t3 = bound_terms(eta, G=2.0, D=0.5)
    assert g == pytest.approx(math.sqrt(t1 / (t2 + t3)), rel=1e-14)
    grid = g * np.exp(np.linspace(-0.5, 0.5, 101))
    values = omega(eta, grid, G=2.0, D=0.5)
    assert int(np.argmin(values)) == 50
    assert values.min() == pytest.approx(optimal_bound(eta, G=2.0, D=0.5), rel=1e-12)
    assert optimal_bound(eta, G=2.0, D=0.5) == pytest.approx(2 * math.sqrt(t1 * (t2 + t3)), rel=1e-14)
    assert omega(eta, 1.1 * g, G=2.0, D=0.5) > omega(eta, g, G=2.0, D=0.5)


def test_suffix_sums_stay_accurate_where_total_minus_cumsum_cancels():
    # 99,000 steps at LR 1 then 1,000 at 1e-9; G_t = 1/eta_t so that every a_t G_t = 1
    T, m, tiny = 100_000, 1_000, 1e-9
    eta = np.concatenate([np.ones(T - m), np.full(m, tiny)])
    G = 1.0 / eta
    k = np.arange(T)
    exact_P = np.where(k < T - m, (T - m - k) + m * tiny, (T - k) * tiny)  # sum(eta[k:]), one rounding
    exact_Q = (T - k).astype(float)  # sum((eta*G)[k:])
    naive_P = eta.sum() - np.concatenate([[0.0], np.cumsum(eta)[:-1]])
    np.testing.assert_allclose(suffix_sum(eta), exact_P, rtol=1e-12)
    assert np.max(np.abs(naive_P / exact_P - 1)) > 1e-3  # the naive form really is broken here

    exact_t3 = 0.5 * np.sum(eta[:-1] / exact_P[1:] * exact_Q[:-1] / exact_P[:-1])
    naive_t3 = 0.5 * np.sum(eta[:-1] / naive_P[1:] * exact_Q[:-1] / naive_P[:-1])
    t3 = bound_terms(eta, G=G)[2]
    assert t3 == pytest.approx(exact_t3, rel=1e-12)
    assert abs(naive_t3 / exact_t3 - 1) > 1e-4


def test_omega_curve_is_the_bound_of_each_truncated_run():
    eta = convex_schedule("wsd", 3000, 0.3)
    steps = np.array([1, 2, 17, 500, 2399, 2400, 2999, 3000])
    gamma = 0.02
    want = [omega(eta[:t], gamma) for t in steps]
    np.testing.assert_allclose(omega_curve(eta, steps, gamma), want, rtol=1e-12)
    t1, t2, t3 = bound_terms(eta, steps=steps)
    np.testing.assert_allclose(t1 / gamma + gamma * (t2 + t3), want, rtol=1e-12)
    # default gamma is gamma* of the whole schedule, where the last point equals Omega*
    assert omega_curve(eta, [3000])[0] == pytest.approx(optimal_bound(eta), rel=1e-12)


def test_omega_curve_blocks_give_the_same_numbers(monkeypatch):
    eta = convex_schedule("cosine", 800)
    steps = np.arange(10, 801, 7)
    whole = omega_curve(eta, steps, 0.05)
    monkeypatch.setattr(bound_module, "_BLOCK_ELEMENTS", 1500)  # 1-2 rows per block
    np.testing.assert_allclose(omega_curve(eta, steps, 0.05), whole, rtol=1e-13)


def test_zero_lr_steps_do_not_move_the_iterate():
    eta = np.array([0.0, 0.0, 1.0, 0.5, 0.0, 0.0])
    t1, t2, t3 = bound_terms(eta, steps=np.arange(1, 7))
    assert np.isinf(t1[:2]).all() and (t2[:2] == 0).all()
    want = brute_force_terms([0.0, 0.0, 1.0, 0.5], [1.0] * 4, 1.0)
    for i in (3, 4, 5):  # horizons 4, 5, 6 end at the same iterate
        assert (t1[i], t2[i], t3[i]) == pytest.approx(want, rel=1e-14)
    assert bound_terms(eta) == pytest.approx(want, rel=1e-14)


# -- schedules -----------------------------------------------------------------------------

def test_convex_schedule_matches_the_reference_construction():
    T = 1000
    eta = convex_schedule("wsd", T, 0.2)
    assert eta.size == T and eta[799] == 1.0 and eta[800] == 1.0 and eta[801] == pytest.approx(1 - 1 / 200)
    assert eta[-1] == pytest.approx(1 / 200)  # the final zero (point T + 1) is not included
    cos = convex_schedule("cosine", T)
    np.testing.assert_allclose(cos, 0.5 * (1 + np.cos(np.pi * np.arange(T) / T)), rtol=0, atol=1e-15)
    np.testing.assert_allclose(convex_schedule("wsd", T, 1.0, "cosine"), cos, atol=1e-15)
    np.testing.assert_allclose(convex_schedule("linear", T), 1 - np.arange(T) / T, atol=1e-15)
    assert convex_schedule("cosine", T, final_lr=0.1)[-1] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (T - 1) / T)))


def test_lrtune_schedules_are_normalised_by_their_peak():
    spec = "wsd:steps=1000,peak=3e-4,cooldown=0.2"
    np.testing.assert_allclose(normalized_lr(spec), convex_schedule("wsd", 1000, 0.2), atol=1e-15)
    assert optimal_base_lr(spec) == pytest.approx(gamma_star("wsd", 1000), rel=1e-12)
    s = parse_schedule("cosine:steps=2000,peak=1e-3")
    assert optimal_base_lr(s) == pytest.approx(gamma_star("cosine", 2000), rel=1e-12)


def test_optimal_base_lr_transfers_peak_lr_across_horizons():
    # gamma* ratios carry a tuned peak LR: doubling T scales it by about 2^-0.49
    ratio = gamma_star("wsd", 20_000) / gamma_star("wsd", 10_000)
    assert 2 ** -0.5 < ratio < 2 ** -0.48


def test_fit_lr_sweep_recovers_the_minimiser():
    g = np.array([1e-4, 5e-4, 1e-3, 2e-3, 3e-3])
    fit = fit_lr_sweep(g, 3e-4 / g + 250.0 * g + 2.9)
    assert fit.best_base_lr == pytest.approx(math.sqrt(3e-4 / 250.0), rel=1e-9)
    assert (fit.a, fit.b, fit.c) == pytest.approx((3e-4, 250.0, 2.9), rel=1e-9)


# -- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("call,match", [
    (lambda: bound_terms([1.0, -0.5]), r"eta must be >= 0: eta\[1\]"),
    (lambda: bound_terms([]), "eta is empty"),
    (lambda: bound_terms([0.0, 0.0]), "at least one LR > 0"),
    (lambda: bound_terms([1.0, np.nan]), "eta must be finite"),
    (lambda: bound_terms([1.0, 0.5], G=[1.0, 2.0, 3.0]), r"one value per step \(2\)"),
    (lambda: bound_terms([1.0, 0.5], G=[1.0, 0.0]), r"G must be finite and > 0 at every step: G\[1\]"),
    (lambda: bound_terms([1.0, 0.5], G=-1.0), "G must be a finite number > 0, got -1.0"),
    (lambda: bound_terms([1.0, 0.5], D=0), "D must be a finite number > 0, got 0"),
    (lambda: bound_terms([1.0, 0.5], steps=[3]), "known only for steps 1..2"),
    (lambda: omega([1.0, 0.5], 0.0), "gamma must be finite and > 0"),
    (lambda: omega_curve([1.0, 0.5], [1, 2], gamma=-1.0), "gamma must be a finite number > 0"),
    (lambda: convex_schedule("step", 100), "family must be one of constant, cosine, linear, wsd"),
    (lambda: convex_schedule("wsd", 100, 0.2, "exp"), "shape must be one of linear, 1-sqrt, cosine"),
    (lambda: convex_schedule("wsd", 100, 1.5), r"cooldown_fraction must be in \(0, 1\], got 1.5"),
    (lambda: convex_schedule("wsd", 0), "horizon must be an integer >= 1, got 0"),
    (lambda: convex_schedule("cosine", 100, final_lr=1.0), r"final_lr must be a fraction of the peak in \[0, 1\)"),
    (lambda: fit_lr_sweep([1e-3, 2e-3], [3.0, 3.1]), "at least 3 distinct base LRs, got 2"),
    (lambda: fit_lr_sweep([1e-3, 2e-3, 3e-3], [3.0, 3.1]), "one value per base_lr"),
    (lambda: fit_lr_sweep([], []), "base_lr must be a non-empty 1-d list, the base LR of each run"),
    (lambda: fit_lr_sweep([-1e-4, 5e-4, 1e-3], [3.0] * 3), r"base_lr must be finite and > 0: run 0 has -0.0001"),
])
def test_bad_input_raises_value_error_naming_the_field(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_gamma_star_of_an_lr_array_scales_exactly_with_the_array_at_any_magnitude():
    from lrtune.bound import convex_schedule, optimal_bound

    eta = convex_schedule("wsd", 100_000, 0.2)
    g, b = optimal_base_lr(eta), optimal_bound(eta)
    for scale in (1e-3, 1e-150, 1e-160, 1e150):  # sums of squares of these under- or overflow
        assert optimal_base_lr(eta * scale) * scale == pytest.approx(g, rel=1e-12)
        assert optimal_bound(eta * scale) == pytest.approx(b, rel=1e-12)
