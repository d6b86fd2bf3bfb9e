"""Sample-quality metrics that work offline.

Inception weights cannot be downloaded here, so images are scored the way the fast.ai course scores
Fashion-MNIST: a small classifier of the data set, trained by the project's own command and shipped, provides
features (its penultimate layer) in which we compute. Two: for the 8x8 digits, data/digits_classifier.pt (64
features, against the 500 held-out digits); for 28x28 Fashion-MNIST, data/fashion_classifier.pt (128 features,
against the 10,000 test images). Which one scores a set is read off the images' shape. In those features:

- the Frechet distance FD = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1^1/2 S_2 S_1^1/2)^1/2)
  (Heusel et al. 2017, "GANs trained by a two time-scale update rule...", the FID formula), with the
  matrix square root from symmetric eigendecompositions in float64;
- KID, the unbiased MMD^2 with the kernel k(x, y) = (x.y / d + 1)^3 (Binkowski et al. 2018). It is
  unbiased over draws of *both* sets; against one fixed reference set it carries an offset set by that
  set's own pairs, which is why the digits floor reads negative. Read KID as a difference to its floor;
- the data floor, drawn the way samples are drawn: the same distances for n real training digits drawn
  independently, i.e. with replacement, averaged over independent draws (`data_floor`);
- a spread for every figure: the standard error over independent draws, of real data for the floor and of
  generated sets for a model (`score_replicates`), so that a difference can be read against the noise.
- the project's quality bar for digits (`meets_quality_bar`): FD within 1.2x its floor, or within two
  standard errors of it, and (where judged) at most 12 % memorization;
- what a metric sees: `floor_draws(artefact=...)` scores real images with noise or a `gaussian_blur` applied,
  against the same floor (notebook 03 calibrates both classifiers with it).

For 2-D data: the sliced Wasserstein-2 distance (random projections, sorted samples) and its floor
between two independent true samples. And a memorization check for the small digits set.

Taught in notebooks/03_training.ipynb and used by notebooks/04_step_sweep.ipynb.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ddimlib._validate import require_choice, require_floating, require_int
from ddimlib.data import DATA_DIR, IMAGE_SHAPES, load_digits, load_image_set

CLASSIFIER_FILE = DATA_DIR / "digits_classifier.pt"


# ---------------------------------------------------------------- the feature network


class DigitClassifier(nn.Module):
    """A small CNN for 8x8 digits in [-1, 1]: three 3x3 conv layers, two poolings, a 64-unit feature layer."""

    feature_dim = 64

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 64, 3, padding=1)
        self.fc = nn.Linear(64 * 2 * 2, self.feature_dim)
        self.head = nn.Linear(self.feature_dim, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer, (B, 64): what FD and KID compare."""
        h = F.relu(self.conv1(x))
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # 4x4
        h = F.max_pool2d(F.relu(self.conv3(h)), 2)  # 2x2
        return F.relu(self.fc(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class FashionClassifier(nn.Module):
    """A CNN for 28x28 Fashion-MNIST in [-1, 1]: four 3x3 conv layers (28, 28, 14, 7), three poolings, a
    128-unit feature layer, a 10-way head. Its 128 penultimate features are what FD and KID compare; trained
    with shifts and flips, they see pixel noise of std 0.02 and a blur of half a pixel (notebook 03 measures it)."""

    feature_dim = 128

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1)
        self.conv4 = nn.Conv2d(128, 128, 3, padding=1)
        self.fc = nn.Linear(128 * 3 * 3, self.feature_dim)
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(self.feature_dim, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer, (B, 128): what FD and KID compare."""
        h = F.relu(self.conv1(x))
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # 14x14
        h = F.max_pool2d(F.relu(self.conv3(h)), 2)  # 7x7
        h = F.max_pool2d(F.relu(self.conv4(h)), 2)  # 3x3
        return F.relu(self.fc(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


CLASSIFIERS = {"digits": DigitClassifier, "fashion_mnist": FashionClassifier}  # the feature network of each image set


def classifier_file(dataset: str) -> Path:
    """Where the shipped feature network of `dataset` ("digits" or "fashion_mnist") lies."""
    require_choice("dataset", dataset, tuple(CLASSIFIERS))
    return CLASSIFIER_FILE if dataset == "digits" else DATA_DIR / "fashion_classifier.pt"


# how each feature network is trained: epochs, batch, AdamW's weight decay, random shifts of up to `shift` pixels (the
# border padded with the background -1), random horizontal flips (clothes are mirror-symmetric, digits are not)
CLASSIFIER_RECIPES = {
    "digits": {"epochs": 60, "batch": 64, "weight_decay": 1e-4, "shift": 1, "flip": False},
    # (their training times are in the classifiers' sidecars, data/*_classifier.json)
    "fashion_mnist": {
        "epochs": 6,
        "batch": 128,
        "weight_decay": 5e-4,
        "shift": 2,
        "flip": True,
    },
}


def _augment(images: torch.Tensor, generator: torch.Generator, shift: int, flip: bool) -> torch.Tensor:
    """One random translation by up to `shift` pixels for the whole batch, then (if flip) a horizontal flip half the
    time."""
    padded = F.pad(images, (shift, shift, shift, shift), value=-1.0)
    dy, dx = torch.randint(0, 2 * shift + 1, (2,), generator=generator).tolist()
    moved = padded[:, :, dy : dy + images.shape[2], dx : dx + images.shape[3]]
    return moved.flip(3) if flip and torch.rand((), generator=generator) < 0.5 else moved


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    dataset: str = "digits",
    seed: int = 0,
    epochs: int | None = None,
    progress: bool = False,
) -> nn.Module:
    """Train the feature network of `dataset` (CLASSIFIERS) on its (N, 1, H, W) training images and labels, with the
    dataset's recipe (CLASSIFIER_RECIPES; epochs overrides its number of epochs): AdamW with a one-cycle learning
    rate."""
    from tqdm.auto import tqdm

    require_choice("dataset", dataset, tuple(CLASSIFIERS))
    recipe = CLASSIFIER_RECIPES[dataset]
    epochs, batch = epochs or recipe["epochs"], recipe["batch"]
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = CLASSIFIERS[dataset]()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=recipe["weight_decay"])
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=3e-3, total_steps=epochs * ((len(images) + batch - 1) // batch)
    )
    model.train()
    for _ in tqdm(range(epochs), desc=f"{dataset} classifier", disable=not progress):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), batch):
            index = order[start : start + batch]
            x = _augment(images[index], generator, recipe["shift"], recipe["flip"])
            loss = F.cross_entropy(model(x), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    return model.eval()


def load_classifier(path: Path | None = None, dataset: str = "digits") -> nn.Module:
    """The shipped feature network of `dataset` (or the one at `path`), weights loaded with weights_only=True."""
    require_choice("dataset", dataset, tuple(CLASSIFIERS))
    model = CLASSIFIERS[dataset]()
    model.load_state_dict(torch.load(path or classifier_file(dataset), map_location="cpu", weights_only=True))
    return model.eval()


@functools.cache
def shipped_classifier(dataset: str) -> nn.Module:
    """The shipped feature network of `dataset`, loaded once per process: what every metric uses when it is given no
    classifier. Shared, so treat it as read-only (load_classifier gives a copy of your own)."""
    return load_classifier(dataset=dataset)


def _dataset_of(images: torch.Tensor) -> str:
    """The data set whose classifier scores images of this shape: (N, 1, 8, 8) digits, (N, 1, 28, 28) Fashion-MNIST."""
    require_floating("images", images)
    for dataset, shape in IMAGE_SHAPES.items():
        if images.ndim == 4 and tuple(images.shape[1:]) == shape:
            return dataset
    raise ValueError(
        f"images must have shape (N, 1, 8, 8) (digits) or (N, 1, 28, 28) (Fashion-MNIST), got {tuple(images.shape)}"
    )


@torch.no_grad()
def classifier_features(images: torch.Tensor, classifier: nn.Module | None = None, batch: int = 64) -> torch.Tensor:
    """(N, 1, 8, 8) digits or (N, 1, 28, 28) Fashion-MNIST images in [-1, 1] -> (N, d) float64 penultimate
    features of the data set's classifier (images are clipped to [-1, 1] first), in batches of `batch`."""
    dataset = _dataset_of(images)
    classifier = classifier or shipped_classifier(dataset)
    x = images.float().clamp(-1, 1).cpu()
    return torch.cat([classifier.features(part) for part in x.split(batch)]).double()


# ---------------------------------------------------------------- distances between feature sets


def sqrtm_psd(matrix: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix, via eigh (negative rounding clipped)."""
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(features_1: torch.Tensor, features_2: torch.Tensor) -> float:
    """FD between Gaussians fitted to two feature sets (N1, d) and (N2, d), in float64.

    tr((S_1 S_2)^1/2) is computed as tr((S_1^1/2 S_2 S_1^1/2)^1/2), a symmetric PSD matrix, so
    only symmetric eigendecompositions are needed (no complex parts, no iteration).
    """
    f1, f2 = features_1.double(), features_2.double()
    mu_1, mu_2 = f1.mean(0), f2.mean(0)
    cov_1, cov_2 = torch.cov(f1.T), torch.cov(f2.T)
    root_1 = sqrtm_psd(cov_1)
    cross = sqrtm_psd(root_1 @ cov_2 @ root_1)
    return float(((mu_1 - mu_2) ** 2).sum() + cov_1.trace() + cov_2.trace() - 2 * cross.trace())


def _kernel_sum(x: torch.Tensor, y: torch.Tensor, skip_diagonal: bool = False, block: int = 2048) -> torch.Tensor:
    """sum_ij (x_i.y_j / d + 1)^3 over all pairs (without i = j if skip_diagonal, for y = x), in row blocks
    so that 6,000 samples need 100 MB, not 300 MB."""
    d, total = x.shape[1], x.new_zeros(())
    for start in range(0, len(x), block):
        kernel = (x[start : start + block] @ y.T / d + 1) ** 3
        total += kernel.sum()
        if skip_diagonal:
            total -= kernel.diagonal(offset=start).sum()
    return total


def kernel_inception_distance(features_1: torch.Tensor, features_2: torch.Tensor) -> float:
    """Unbiased MMD^2 between feature sets (m, d) and (n, d) with the cubic polynomial kernel (x.y / d + 1)^3.

    Unbiased over draws of both sets. With features_2 = (y_1..y_n) held fixed, the expectation over draws of
    features_1 is E k(x, x') - 2 mean_j E k(x, y_j) + mean_{j != j'} k(y_j, y_j'): the last term is this one
    reference's, not its expectation, so data scored against data need not average zero."""
    y = features_2.double()
    return _kid_against(features_1.double(), y, _within(y))


def _within(y: torch.Tensor) -> torch.Tensor:
    """mean_{j != j'} k(y_j, y_j'): the reference's own term of KID, computed once for many sets scored against it."""
    n = y.shape[0]
    return _kernel_sum(y, y, skip_diagonal=True) / (n * (n - 1))


def _kid_against(x: torch.Tensor, y: torch.Tensor, within_y: torch.Tensor) -> float:
    m, n = x.shape[0], y.shape[0]
    within_x = _kernel_sum(x, x, skip_diagonal=True) / (m * (m - 1))
    return float(within_x + within_y - 2 * _kernel_sum(x, y) / (m * n))


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, projections: int = 256, seed: int = 0) -> float:
    """Sliced Wasserstein-2 distance between two equally sized point sets (N, D), in float64.

    SW2^2 = mean over random unit directions u of W2^2 between the projected samples, which in 1-D
    is the mean squared difference of the sorted projections.
    """
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape (N, D), got {tuple(x.shape)} and {tuple(y.shape)}")
    g = torch.Generator().manual_seed(seed)
    directions = torch.randn(x.shape[1], projections, generator=g, dtype=torch.float64)
    directions /= directions.norm(dim=0, keepdim=True)
    px, py = (x.double().cpu() @ directions).sort(0).values, (y.double().cpu() @ directions).sort(0).values
    return float(((px - py) ** 2).mean().sqrt())


def memorization_fraction(
    generated: torch.Tensor, train: torch.Tensor, held_out: torch.Tensor, quantile: float = 0.1
) -> float:
    """Fraction of generated images closer to their nearest training image than the `quantile` of that
    same distance for held-out real images. About `quantile` for a model that does not copy."""
    flat = lambda images: images.reshape(len(images), -1).double()
    nearest = lambda images: torch.cdist(flat(images), flat(train)).min(1).values
    threshold = torch.quantile(nearest(held_out), quantile)
    return float((nearest(generated) < threshold).double().mean())


# ---------------------------------------------------------------- scoring a model


FLOOR_DRAWS = 20  # independent draws of real data behind every floor


_REFERENCES: dict = {}
# The Fashion-MNIST floor draws from the first 20,000 training images: an i.i.d. sample of the distribution as large as
# needed for draws of a few thousand (a draw of 2,000 repeats 4.8 % of its images, against 1.7 % from all 60,000), at a
# third of the cost of the features of all 60,000 (benchmarks/README.md, "Figures behind constants")
FASHION_POOL = 20_000


def reference_features(dataset: str, classifier: nn.Module | None = None, split: str = "test") -> torch.Tensor:
    """Features of a data set's held-out images (split="test": the reference every FD is measured against) or of
    its training images ("train": the pool the floor draws from): digits 500 and 1,297, Fashion-MNIST 10,000 and
    the first FASHION_POOL of its 60,000. Kept for the process when the classifier is the shipped one
    (classifier=None)."""
    require_choice("dataset", dataset, tuple(CLASSIFIERS))
    require_choice("split", split, ("train", "test"))
    if classifier is None and (dataset, split) in _REFERENCES:
        return _REFERENCES[dataset, split]
    images = load_image_set(dataset, "test").images if split == "test" else _floor_pool(dataset)
    features = classifier_features(images, classifier or shipped_classifier(dataset))
    if classifier is None:
        _REFERENCES[dataset, split] = features
    return features


def _floor_pool(dataset: str) -> torch.Tensor:
    """The training images a floor draws from: all 1,297 digits, the first FASHION_POOL Fashion-MNIST images."""
    images = load_image_set(dataset, "train").images
    return images[:FASHION_POOL] if dataset == "fashion_mnist" else images


def _reference_within(dataset: str, classifier: nn.Module | None) -> torch.Tensor:
    """KID's term of the reference's own pairs (`_within`), computed once per process for the shipped classifier."""
    if classifier is not None:
        return _within(reference_features(dataset, classifier))
    if (dataset, "within") not in _REFERENCES:
        _REFERENCES[dataset, "within"] = _within(reference_features(dataset))
    return _REFERENCES[dataset, "within"]


def floor_draws(
    n: int,
    draws: int = FLOOR_DRAWS,
    seed: int = 0,
    classifier: nn.Module | None = None,
    dataset: str = "digits",
    artefact: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
) -> dict:
    """FD and KID against the held-out images of `draws` independent sets of `n` real training images, each
    drawn **with replacement**: n independent draws from the training distribution, as a generator's n samples
    are. Returns {"fd": (draws,), "kid": (draws,)} in float64. dataset: "digits" or "fashion_mnist".

    artefact: if given, each drawn set is passed through artefact(images, generator) before it is scored
    (added noise, a blur): what the metric sees of that artefact, read against the plain floor.

    Why not a subset without replacement: 1,000 of the 1,297 training digits share most of their images
    from one draw to the next, so their FD is lower and steadier than that of any 1,000 independent draws,
    and no generator could reach it (notebooks/06_appendix_measuring.ipynb measures both). The caveat of drawing with
    replacement: for n near or above 1,297 the draws repeat images, so this is the floor of the *training*
    distribution (the one the model is fitted to), not of fresh digits; notebook 06 measures the difference.
    """
    require_int("n", n, 2)
    require_int("draws", draws, 2)
    require_choice("dataset", dataset, tuple(CLASSIFIERS))
    reference, within = reference_features(dataset, classifier), _reference_within(dataset, classifier)
    if artefact is None:
        pool = reference_features(dataset, classifier, split="train")
        size = len(pool)
    else:
        images = _floor_pool(dataset)
        classifier, size = classifier or shipped_classifier(dataset), len(images)
    generator = torch.Generator().manual_seed(seed)
    fd, kid = [], []
    for _ in range(draws):
        index = torch.randint(size, (n,), generator=generator)
        real = pool[index] if artefact is None else classifier_features(artefact(images[index], generator), classifier)
        fd.append(frechet_distance(real, reference))
        kid.append(_kid_against(real, reference, within))
    return {"fd": torch.tensor(fd, dtype=torch.float64), "kid": torch.tensor(kid, dtype=torch.float64)}


def gaussian_blur(images: torch.Tensor, std: float) -> torch.Tensor:
    """(B, C, H, W) images blurred by a Gaussian of `std` pixels (a 5x5 kernel, edges padded with the
    background value -1): the artefact of an over-smoothed sample."""
    if not std > 0:
        raise ValueError(f"std must be > 0 pixels, got {std}")
    offsets = torch.arange(-2, 3, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / std) ** 2)
    kernel = (kernel / kernel.sum()).to(images)  # the images' dtype and device
    C = images.shape[1]
    padded = F.pad(images, (2, 2, 2, 2), value=-1.0)
    rows = F.conv2d(padded, kernel.view(1, 1, 1, 5).repeat(C, 1, 1, 1), groups=C)
    return F.conv2d(rows, kernel.view(1, 1, 5, 1).repeat(C, 1, 1, 1), groups=C)


def _summary(values: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation of a 1-D tensor, as floats."""
    return float(values.mean()), float(values.std())


def data_floor(
    n: int, dataset: str = "digits", draws: int = FLOOR_DRAWS, seed: int = 0, classifier: nn.Module | None = None
) -> dict:
    """The data floor for `n` generated images of `dataset`: the mean FD and KID of `floor_draws`, with their
    standard deviation (the spread of one draw) and standard error (the uncertainty of the mean)."""
    values = floor_draws(n, draws, seed, classifier, dataset)
    pool = (
        "the 1,297 training digits"
        if dataset == "digits"
        else f"the first {FASHION_POOL:,} Fashion-MNIST training images"
    )
    result = {"n": n, "draws": draws, "drawn": f"with replacement from {pool}"}
    for key, draws_of_key in values.items():
        mean, sd = _summary(draws_of_key)
        result |= {key: mean, f"{key}_sd": sd, f"{key}_se": sd / draws**0.5}
    return result


@torch.no_grad()
def score_images(images: torch.Tensor, classifier: nn.Module | None = None) -> dict:
    """FD and KID of one set of generated images against the held-out images of their data set (by shape:
    (N, 1, 8, 8) digits, (N, 1, 28, 28) Fashion-MNIST); for digits also the memorization fraction against the
    1,297 training digits."""
    dataset = _dataset_of(images)
    # cached, with its KID term, for the shipped classifier (classifier=None)
    reference = reference_features(dataset, classifier)
    within = _reference_within(dataset, classifier)
    classifier = classifier or shipped_classifier(dataset)
    generated = classifier_features(images, classifier)
    result = {
        "n": len(images),
        "fd": frechet_distance(generated, reference),
        "kid": _kid_against(generated.double(), reference, within),
    }
    if dataset == "digits":
        train, test = load_digits("train"), load_digits("test")
        result["memorized"] = memorization_fraction(images.float().clamp(-1, 1).cpu(), train.images, test.images)
    return result


def score_replicates(replicates: torch.Tensor, classifier: nn.Module | None = None) -> dict:
    """`score_images` of R independent sets of generated images, (R, N, 1, H, W) (each from its own x_T): the mean
    of each figure over the sets, its standard deviation (the spread of one set's figure) and its standard
    error (the uncertainty of the mean).

    Independent sets, not a bootstrap: resampling one set with replacement (or a jackknife) overstated the
    spread of FD on the shipped UNet, e.g. 0.93 (bootstrap) and 0.71 (jackknife) against 0.47 over 8
    independent sets of 3,000 samples, because a resample repeats points and FD is not linear in them."""
    if replicates.ndim != 5 or len(replicates) < 2:
        raise ValueError(f"replicates must have shape (R, N, 1, H, W) with R >= 2, got {tuple(replicates.shape)}")
    scores = [score_images(images, classifier) for images in replicates]
    result = {"n": replicates.shape[1], "replicates": len(replicates)}
    for key in scores[0]:
        if key == "n":
            continue
        mean, sd = _summary(torch.tensor([score[key] for score in scores], dtype=torch.float64))
        result |= {key: mean, f"{key}_sd": sd, f"{key}_se": sd / len(scores) ** 0.5}
    return result


# ---------------------------------------------------------------- the project's quality bar


QUALITY_BAR = 1.2  # FD at most this multiple of the data floor at the same n ...
QUALITY_BAR_SE = (
    2  # ... or FD - floor within this many standard errors (a model the samples cannot tell from the floor)
)
MEMORIZATION_BAR = 0.12  # and, where memorization is judged, at most this fraction of samples copy a training digit
QUALITY_BAR_RULE = f"FD <= {QUALITY_BAR} x floor, or FD - floor within two standard errors"  # the sidecars' "bar"


def meets_quality_bar(read: dict, memorized: float | None = None) -> bool:
    """The digits quality bar: FD <= QUALITY_BAR x floor, or FD - floor <= QUALITY_BAR_SE standard errors of
    that difference; with `memorized` given, also memorized <= MEMORIZATION_BAR.

    read: a figure read against its floor, as `against_floor` returns it (a sidecar's "metric" holds the same
    keys): fd_over_floor, fd_minus_floor, fd_minus_floor_se. The one rule behind `ddimlib.train.evaluate`'s
    "meets_bar" (FD only, as the sidecars record it) and notebook 03's judgement of the shipped model."""
    keys = ("fd_over_floor", "fd_minus_floor", "fd_minus_floor_se")
    missing = [key for key in keys if not isinstance(read, dict) or key not in read]
    if missing:
        raise ValueError(
            f"read must be a dict with the keys {', '.join(keys)} (what against_floor returns); "
            f"got {type(read).__name__} without {', '.join(missing)}"
        )
    if memorized is not None and not 0 <= memorized <= 1:
        raise ValueError(f"memorized must be a fraction in [0, 1] or None, got {memorized!r}")
    fd_ok = (
        read["fd_over_floor"] <= QUALITY_BAR or read["fd_minus_floor"] <= QUALITY_BAR_SE * read["fd_minus_floor_se"]
    )
    return bool(fd_ok and (memorized is None or memorized <= MEMORIZATION_BAR))


def against_floor(score: dict, floor: dict) -> dict:
    """A generated set's figures read against the floor at the same n: FD / floor, and the differences
    FD - floor and KID - floor with their standard errors (independent errors added in quadrature)."""
    if score["n"] != floor["n"]:
        raise ValueError(f"score and floor must be at the same sample size n, got {score['n']} and {floor['n']}")
    result = {"fd_over_floor": score["fd"] / floor["fd"]}
    for key in ("fd", "kid"):
        result[f"{key}_minus_floor"] = score[key] - floor[key]
        result[f"{key}_minus_floor_se"] = (score[f"{key}_se"] ** 2 + floor[f"{key}_se"] ** 2) ** 0.5
    return result


def off_mode_share(points: torch.Tensor, mixture, widths: float = 3.0) -> float:
    """The share of points farther than `widths` component standard deviations from every mean of a Gaussian mixture
    (a `ddimlib.oracle.GaussianMixture`, e.g. `ddimlib.oracle.eight_gaussians()`): the mass a sampler left between
    the modes. Sliced W2 at a thousand points hardly sees it (notebook 04), while real draws put about 1 % there at
    three standard deviations in 2-D.

    points: (N, D). Returns a fraction in [0, 1].
    """
    if points.ndim != 2 or points.shape[1] != mixture.means.shape[1]:
        raise ValueError(f"points must have shape (N, {mixture.means.shape[1]}), got {tuple(points.shape)}")
    if not widths > 0:
        raise ValueError(f"widths must be positive, got {widths}")
    # (N, K) in each component's units
    scaled = torch.cdist(points.double().cpu(), mixture.means) / mixture.stds.clamp(min=1e-12)
    return float((scaled.min(1).values > widths).double().mean())


def mode_stats(points: torch.Tensor, mixture) -> dict[str, float]:
    """How (N, D) points sit on the modes of a Gaussian mixture, each figure with its standard error: "between", the
    share of points between the modes (`off_mode_share` at three standard deviations), and "width", sqrt(E d^2 / D)
    with d the distance to the nearest mean (the modes' standard deviation, for points drawn from an isotropic mixture
    whose components share one)."""
    share = off_mode_share(points, mixture)
    d2 = torch.cdist(points.double().cpu(), mixture.means).min(1).values ** 2
    width = float((d2.mean() / mixture.dim).sqrt())
    return {
        "between": share,
        "between_se": (share * (1 - share) / len(d2)) ** 0.5,
        "width": width,
        "width_se": float(d2.std()) / len(d2) ** 0.5 / (2 * mixture.dim * width),  # the delta method on sqrt(mean / D)
    }
