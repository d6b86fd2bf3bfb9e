"""Offline metrics: FD (with a stable matrix square root), KID, sliced W2, memorization, the feature network."""

import json
import math

import pytest
import torch
from helpers import needs_fashion_mnist

from ddimlib.data import DATA_DIR, load_digits
from ddimlib.metrics import (
    QUALITY_BAR_RULE,
    against_floor,
    classifier_features,
    data_floor,
    floor_draws,
    frechet_distance,
    kernel_inception_distance,
    load_classifier,
    meets_quality_bar,
    memorization_fraction,
    score_replicates,
    sliced_wasserstein,
    sqrtm_psd,
)

F64 = torch.float64


def random_spd(d, generator):
    a = torch.randn(d, d, generator=generator, dtype=F64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=F64)


def test_sqrt_of_spd_matrices_against_a_float64_reference():
    """tr((S1^1/2 S2 S1^1/2)^1/2) = tr((S1 S2)^1/2) = sum of square roots of the eigenvalues of S1 S2."""
    g = torch.Generator().manual_seed(0)
    for d in [2, 10, 64]:
        s1, s2 = random_spd(d, g), random_spd(d, g)
        root = sqrtm_psd(s1)
        assert torch.allclose(root @ root, s1, atol=1e-10)
        reference = torch.linalg.eigvals(s1 @ s2).real.clamp(min=0).sqrt().sum()
        assert torch.allclose(sqrtm_psd(root @ s2 @ root).trace(), reference, rtol=1e-9)


def test_fd_of_a_set_with_itself_is_zero_and_a_shift_adds_its_squared_norm():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(500, 16, generator=g, dtype=F64) @ random_spd(16, g)
    assert abs(frechet_distance(x, x)) < 1e-8
    shift = torch.randn(16, generator=g, dtype=F64)
    assert math.isclose(frechet_distance(x, x + shift), float((shift**2).sum()), rel_tol=1e-8)


def test_fd_and_kid_grow_with_noise_and_pure_noise_is_far_above_the_floor():
    classifier = load_classifier()
    train, test = load_digits("train"), load_digits("test")
    reference = classifier_features(test.images, classifier)
    g = torch.Generator().manual_seed(2)
    images = train.images[:500]
    fds, kids = [], []
    for level in [0.0, 0.2, 0.4, 0.8]:
        noisy = images + level * torch.randn(images.shape, generator=g)
        features = classifier_features(noisy, classifier)
        fds.append(frechet_distance(features, reference))
        kids.append(kernel_inception_distance(features, reference))
    assert all(b > a for a, b in zip(fds, fds[1:])), fds
    assert all(b > a for a, b in zip(kids, kids[1:])), kids
    floor = data_floor(500, classifier=classifier)["fd"]
    noise = classifier_features(torch.rand(500, 1, 8, 8, generator=g) * 2 - 1, classifier)
    assert frechet_distance(noise, reference) > 20 * floor


def test_kid_is_unbiased_at_zero_and_positive_for_a_shift():
    g = torch.Generator().manual_seed(3)
    same = [
        kernel_inception_distance(
            torch.randn(200, 8, generator=g, dtype=F64), torch.randn(100, 8, generator=g, dtype=F64)
        )
        for _ in range(40)
    ]
    mean, se = torch.tensor(same).mean(), torch.tensor(same).std() / math.sqrt(40)
    assert abs(mean) < 4 * se
    shifted = kernel_inception_distance(
        torch.randn(200, 8, generator=g, dtype=F64), torch.randn(100, 8, generator=g, dtype=F64) + 1
    )
    assert shifted > 10 * torch.tensor(same).std()


def test_against_one_fixed_reference_kid_is_offset_by_the_references_own_term():
    """Why the digits floor's KID reads negative: with the reference set fixed, KID is unbiased over draws of the
    other set only. For sets drawn with replacement from a pool, its expectation is the MMD^2 of the two empirical
    distributions minus the reference's own term (mean k(y, y) - mean k(y, y') over y != y') / n, which is
    E k(x, x') - 2 mean_j E k(x, y_j) + mean_{j != j'} k(y_j, y_j') (the form in the docstring)."""
    g = torch.Generator().manual_seed(4)
    pool, reference = torch.randn(30, 4, generator=g, dtype=F64), torch.randn(6, 4, generator=g, dtype=F64)
    kernel = lambda a, b: (a @ b.T / a.shape[1] + 1) ** 3
    k_pp, k_pr, k_rr = kernel(pool, pool), kernel(pool, reference), kernel(reference, reference)
    n = len(reference)
    off_diagonal = (k_rr.sum() - k_rr.diagonal().sum()) / (n * (n - 1))
    own_term = (k_rr.diagonal().mean() - off_diagonal) / n
    expected = float(k_pp.mean() - 2 * k_pr.mean() + k_rr.mean() - own_term)
    draws = torch.tensor(
        [kernel_inception_distance(pool[torch.randint(30, (20,), generator=g)], reference) for _ in range(4000)],
        dtype=F64,
    )
    mean, se = float(draws.mean()), float(draws.std()) / math.sqrt(len(draws))
    assert abs(mean - expected) < 4 * se, (mean, expected, se)
    # two samples of one distribution, yet the offset is resolved: "zero on average" would fail
    assert abs(expected) > 10 * se


def test_sliced_wasserstein_in_closed_form_cases():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2000, 2, generator=g, dtype=F64)
    assert sliced_wasserstein(x, x) == 0.0
    # a shift by c moves each projection by c.u, so SW2 = |c| sqrt(E[(u.e)^2]) = |c| / sqrt(2) in 2-D
    assert math.isclose(
        sliced_wasserstein(x, x + torch.tensor([3.0, 0.0], dtype=F64), projections=4096),
        3 / math.sqrt(2),
        rel_tol=0.03,
    )
    with pytest.raises(ValueError, match="same shape"):
        sliced_wasserstein(x, x[:10])


def test_memorization_fraction_flags_copies_and_not_fresh_data():
    train, test = load_digits("train"), load_digits("test")
    assert memorization_fraction(train.images[:200], train.images, test.images) == 1.0
    assert abs(memorization_fraction(test.images, train.images, test.images) - 0.1) < 0.01


def test_shipped_classifier_is_accurate_on_held_out_digits():
    test = load_digits("test")
    with torch.no_grad():
        accuracy = (load_classifier()(test.images).argmax(1) == test.labels).float().mean().item()
    assert accuracy >= 0.97


def test_kid_in_blocks_equals_the_whole_kernel_matrix():
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(2500, 6, generator=g, dtype=F64), torch.randn(300, 6, generator=g, dtype=F64) + 0.3
    k = lambda a, b: (a @ b.T / 6 + 1) ** 3
    m, n = len(x), len(y)
    whole = (
        (k(x, x).sum() - k(x, x).trace()) / (m * (m - 1))
        + (k(y, y).sum() - k(y, y).trace()) / (n * (n - 1))
        - 2 * k(x, y).mean()
    )
    assert math.isclose(kernel_inception_distance(x, y), float(whole), rel_tol=1e-10)


def test_the_floor_draws_real_digits_with_replacement_like_independent_samples():
    """Drawn without replacement, n = 1,297 would be the whole training split every time (zero spread) and
    n = 2,000 would be impossible; drawn with replacement, both are n independent draws."""
    whole = floor_draws(1297, draws=3)
    assert whole["fd"].unique().numel() == 3 and float(whole["fd"].std()) > 0.1
    assert floor_draws(2000, draws=2)["fd"].shape == (2,)
    # at n = 1,000 the i.i.d. floor sits above the floor of overlapping subsets (3.90, sd 0.60, in notebook 06 section
    # 1)
    floor = data_floor(1000)
    assert floor["drawn"].startswith("with replacement") and floor["fd"] > 5.0, floor
    assert math.isclose(floor["fd_se"], floor["fd_sd"] / math.sqrt(floor["draws"]))


def test_score_replicates_reports_the_mean_and_its_standard_error_over_independent_sets():
    test = load_digits("test")
    sets = test.images[:480].reshape(4, 120, 1, 8, 8)
    score = score_replicates(sets)
    classifier, reference = load_classifier(), classifier_features(test.images)
    fds = torch.tensor([frechet_distance(classifier_features(s, classifier), reference) for s in sets], dtype=F64)
    assert score["n"] == 120 and score["replicates"] == 4
    assert math.isclose(score["fd"], float(fds.mean())) and math.isclose(score["fd_se"], float(fds.std()) / 2)
    assert score["memorized"] < 0.2  # held-out digits are not copies of training digits
    with pytest.raises(
        ValueError, match=r"replicates must have shape \(R, N, 1, H, W\) with R >= 2, got \(120, 1, 8, 8\)"
    ):
        score_replicates(sets[0])


def test_against_floor_adds_independent_errors_in_quadrature_and_needs_the_same_n():
    score = {"n": 100, "fd": 6.0, "fd_se": 0.3, "kid": 10.0, "kid_se": 4.0}
    floor = {"n": 100, "fd": 5.0, "fd_se": 0.4, "kid": -2.0, "kid_se": 3.0}
    read = against_floor(score, floor)
    assert (
        read["fd_over_floor"] == 1.2
        and math.isclose(read["fd_minus_floor"], 1.0)
        and math.isclose(read["fd_minus_floor_se"], 0.5)
    )
    assert read["kid_minus_floor"] == 12.0 and math.isclose(read["kid_minus_floor_se"], 5.0)
    with pytest.raises(ValueError, match="same sample size n, got 100 and 200"):
        against_floor(score, floor | {"n": 200})


def test_the_quality_bar_is_a_ratio_or_two_standard_errors_and_memorization_when_given():
    read = lambda ratio, difference, se: {
        "fd_over_floor": ratio,
        "fd_minus_floor": difference,
        "fd_minus_floor_se": se,
    }
    assert meets_quality_bar(read(1.2, 1.0, 0.1))  # the ratio at the bar
    assert not meets_quality_bar(read(1.21, 1.0, 0.1))  # just above it, the difference 10 se wide
    assert meets_quality_bar(read(1.5, 0.6, 0.3))  # above the ratio, within two standard errors
    assert not meets_quality_bar(read(1.5, 0.61, 0.3))
    assert meets_quality_bar(read(1.1, 0.5, 0.1), memorized=0.12) and not meets_quality_bar(
        read(1.1, 0.5, 0.1), memorized=0.13
    )
    with pytest.raises(ValueError, match="read must be a dict with the keys .* without fd_minus_floor_se"):
        meets_quality_bar({"fd_over_floor": 1.0, "fd_minus_floor": 0.0})
    with pytest.raises(ValueError, match=r"memorized must be a fraction in \[0, 1\] or None, got 12"):
        meets_quality_bar(read(1.0, 0.0, 0.1), memorized=12)


def test_the_shipped_digits_sidecars_were_judged_by_the_same_rule():
    """The sidecar format is unchanged: its "bar" is the rule's text and its "meets_bar" what the rule says of its
    figures."""
    for name in ("digits_unet", "digits_unet_small"):
        metric = json.loads((DATA_DIR / "checkpoints" / f"{name}.json").read_text())["metric"]
        assert metric["bar"] == QUALITY_BAR_RULE and metric["meets_bar"] == meets_quality_bar(metric), name


def test_off_mode_share_counts_the_points_between_the_modes():
    from ddimlib.metrics import off_mode_share
    from ddimlib.oracle import eight_gaussians

    mixture = eight_gaussians()
    real = mixture.sample(200_000, generator=torch.Generator().manual_seed(0))
    expected = math.exp(-4.5)  # 2-D: P(|z| > 3) = exp(-9 / 2) for a standard normal pair (the modes are far apart)
    assert abs(off_mode_share(real, mixture) - expected) < 5 * (expected * (1 - expected) / len(real)) ** 0.5
    # the centre, a mode, near a mode, between
    between = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.4, 1.4], [1.0, 0.0]])
    assert off_mode_share(between, mixture) == 0.5
    with pytest.raises(ValueError, match="points must have shape"):
        off_mode_share(torch.zeros(3, 3), mixture)


def test_the_blur_is_a_separable_gaussian():
    """An impulse of height 2 on the background -1 comes out as -1 plus twice the outer product of the normalised
    1-D Gaussian, and the rest stays background."""
    from ddimlib.metrics import gaussian_blur

    image = -torch.ones(1, 1, 9, 9, dtype=F64)
    image[0, 0, 4, 4] = 1.0
    weights = torch.exp(-0.5 * (torch.arange(-2, 3, dtype=F64) / 0.7) ** 2)
    weights /= weights.sum()
    expected = -torch.ones(9, 9, dtype=F64)
    expected[2:7, 2:7] += 2 * torch.outer(weights, weights)
    torch.testing.assert_close(gaussian_blur(image, 0.7)[0, 0], expected, rtol=0, atol=1e-14)
    assert torch.equal(gaussian_blur(-torch.ones(2, 1, 8, 8), 1.0), -torch.ones(2, 1, 8, 8))  # the background stays
    with pytest.raises(ValueError, match="std must be > 0 pixels, got 0"):
        gaussian_blur(image, 0)


def test_an_artefact_that_changes_nothing_scores_the_floor_exactly_and_noise_scores_above_it():
    """floor_draws(artefact=f) draws the same images as the floor and scores f(images): the identity gives the
    floor's own figures (the features recomputed, to rounding); strong noise lies far above them."""
    plain = floor_draws(300, draws=3)
    same = floor_draws(300, draws=3, artefact=lambda images, generator: images)
    torch.testing.assert_close(same["fd"], plain["fd"], rtol=1e-9, atol=1e-9)
    noisy = floor_draws(
        300, draws=3, artefact=lambda images, generator: images + 0.5 * torch.randn(images.shape, generator=generator)
    )
    assert float(noisy["fd"].min()) > 2 * float(plain["fd"].max())


@needs_fashion_mnist
def test_fashion_images_are_scored_by_the_fashion_classifier():
    from ddimlib.data import load_fashion_mnist
    from ddimlib.metrics import score_images

    test = load_fashion_mnist("test").images[:600]
    assert classifier_features(test).shape == (600, 128)
    score = score_images(test)
    assert set(score) == {"n", "fd", "kid"} and score["n"] == 600
    floor = data_floor(600, "fashion_mnist", draws=3)
    assert {"fd", "fd_sd", "fd_se", "kid"} <= set(floor) and floor["n"] == 600
    # 600 test images are a subset of the reference: closer to it than 600 independent training images
    assert score["fd"] < floor["fd"]
    with pytest.raises(
        ValueError,
        match=r"images must have shape \(N, 1, 8, 8\) \(digits\) or \(N, 1, 28, 28\) \(Fashion-MNIST\), got \(3, 1, "
        r"16, 16\)",
    ):
        classifier_features(torch.zeros(3, 1, 16, 16))


def test_the_shipped_classifier_is_loaded_once_per_process(monkeypatch):
    from ddimlib import metrics

    loads = []
    real = metrics.load_classifier
    monkeypatch.setattr(metrics, "load_classifier", lambda *a, **k: loads.append(k) or real(*a, **k))
    metrics.shipped_classifier.cache_clear()
    try:
        images = torch.zeros(3, 1, 8, 8)
        first = metrics.classifier_features(images)
        assert torch.equal(metrics.classifier_features(images), first)
        assert loads == [{"dataset": "digits"}]
    finally:
        metrics.shipped_classifier.cache_clear()


def test_mode_stats_measures_the_modes_width_and_the_share_between_them_with_standard_errors_that_hold():
    """On draws of the mixture itself the width is its component std (0.1) and the share between the modes is a 2-D
    normal's P(|z| > 3) = exp(-4.5), each within 4 of the standard errors it reports; points squeezed onto the means
    halve the width."""
    from ddimlib.metrics import mode_stats, off_mode_share
    from ddimlib.oracle import eight_gaussians

    mixture = eight_gaussians()
    real = mixture.sample(50_000, generator=torch.Generator().manual_seed(1))
    s = mode_stats(real, mixture)
    assert abs(s["width"] - 0.1) < 4 * s["width_se"] and s["width_se"] < 0.001
    assert abs(s["between"] - math.exp(-4.5)) < 4 * s["between_se"] and s["between"] == off_mode_share(real, mixture)
    # the reported errors are the spread of the figures over independent sets
    draws = [mixture.sample(2000, generator=torch.Generator().manual_seed(10 + k)) for k in range(40)]
    sets = [mode_stats(points, mixture) for points in draws]
    widths = torch.tensor([x["width"] for x in sets], dtype=torch.float64)
    assert 0.7 < float(widths.std()) / sets[0]["width_se"] < 1.4
    nearest = mixture.means[torch.cdist(real, mixture.means).argmin(1)]
    tight = mode_stats(nearest + (real - nearest) / 2, mixture)  # every point halfway to its mode's centre
    assert abs(tight["width"] - 0.05) < 4 * tight["width_se"]
    with pytest.raises(ValueError, match="points must have shape"):
        mode_stats(torch.zeros(3, 3), mixture)
