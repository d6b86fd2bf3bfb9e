"""Sample-quality metrics that work offline.

Inception weights cannot be downloaded here, so images are scored the way the fast.ai course scores
Fashion-MNIST: a small digit classifier, trained on the digits' train split and shipped in
data/digits_classifier.pt, provides features (its 64-unit penultimate layer) in which we compute

- the Frechet distance FD = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1^1/2 S_2 S_1^1/2)^1/2)
  (Heusel et al. 2017, "GANs trained by a two time-scale update rule...", the FID formula), with the
  matrix square root from symmetric eigendecompositions in float64;
- KID, the unbiased MMD^2 with the kernel k(x, y) = (x.y / d + 1)^3 (Binkowski et al. 2018), which
  is unbiased at any sample size;
- the data floor: the same distance between two disjoint sets of real images of the same sizes.

For 2-D data: the sliced Wasserstein-2 distance (random projections, sorted samples) and its floor
between two independent true samples. And a memorization check for the small digits set.

Taught in notebooks/03_training.ipynb and used by notebooks/04_step_sweep.ipynb.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ddimlib._validate import require_floating
from ddimlib.data import DATA_DIR

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


def _shift(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random translations by up to one pixel (padding with the background value -1)."""
    padded = F.pad(images, (1, 1, 1, 1), value=-1.0)
    dy, dx = torch.randint(0, 3, (2,), generator=generator).tolist()
    return padded[:, :, dy : dy + images.shape[2], dx : dx + images.shape[3]]


def train_classifier(images: torch.Tensor, labels: torch.Tensor, epochs: int = 60, seed: int = 0) -> DigitClassifier:
    """Train the feature network on (N, 1, 8, 8) images with one-pixel shift augmentation (a few CPU seconds)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = DigitClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=epochs * ((len(images) + 63) // 64))
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), 64):
            batch = order[start : start + 64]
            loss = F.cross_entropy(model(_shift(images[batch], generator)), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    return model.eval()


def load_classifier(path: Path = CLASSIFIER_FILE) -> DigitClassifier:
    """The shipped feature network (weights loaded with weights_only=True)."""
    model = DigitClassifier()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


@torch.no_grad()
def classifier_features(images: torch.Tensor, classifier: DigitClassifier | None = None) -> torch.Tensor:
    """(N, 1, 8, 8) images in [-1, 1] -> (N, 64) float64 features (images are clipped to [-1, 1] first)."""
    require_floating("images", images)
    if images.ndim != 4 or tuple(images.shape[1:]) != (1, 8, 8):
        raise ValueError(f"images must have shape (N, 1, 8, 8), got {tuple(images.shape)}")
    classifier = classifier or load_classifier()
    return classifier.features(images.float().clamp(-1, 1).cpu()).double()


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


def kernel_inception_distance(features_1: torch.Tensor, features_2: torch.Tensor) -> float:
    """Unbiased MMD^2 between feature sets with the cubic polynomial kernel (x.y / d + 1)^3."""
    x, y = features_1.double(), features_2.double()
    d, m, n = x.shape[1], x.shape[0], y.shape[0]
    k_xx = (x @ x.T / d + 1) ** 3
    k_yy = (y @ y.T / d + 1) ** 3
    k_xy = (x @ y.T / d + 1) ** 3
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return float(within_x + within_y - 2 * k_xy.mean())


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


def memorization_fraction(generated: torch.Tensor, train: torch.Tensor, held_out: torch.Tensor, quantile: float = 0.1) -> float:
    """Fraction of generated images closer to their nearest training image than the `quantile` of that
    same distance for held-out real images. About `quantile` for a model that does not copy."""
    flat = lambda images: images.reshape(len(images), -1).double()
    nearest = lambda images: torch.cdist(flat(images), flat(train)).min(1).values
    threshold = torch.quantile(nearest(held_out), quantile)
    return float((nearest(generated) < threshold).double().mean())


# ---------------------------------------------------------------- scoring a model


def digits_floor(n: int, seed: int = 0, classifier: DigitClassifier | None = None) -> dict:
    """The data floor for `n` generated digits against the held-out split: FD and KID between `n` real
    training digits (a random subset, disjoint from the held-out ones) and the held-out digits."""
    from ddimlib.data import load_digits

    train, test = load_digits("train"), load_digits("test")
    if not 2 <= n <= len(train.images):
        raise ValueError(f"n must be in [2, {len(train.images)}] (the training split's size), got {n}")
    classifier = classifier or load_classifier()
    subset = torch.randperm(len(train.images), generator=torch.Generator().manual_seed(seed))[:n]
    real, reference = classifier_features(train.images[subset], classifier), classifier_features(test.images, classifier)
    return {"fd": frechet_distance(real, reference), "kid": kernel_inception_distance(real, reference)}


@torch.no_grad()
def score_digits(images: torch.Tensor, classifier: DigitClassifier | None = None) -> dict:
    """FD and KID of generated (N, 1, 8, 8) digits against the 500 held-out digits, and the memorization fraction."""
    from ddimlib.data import load_digits

    train, test = load_digits("train"), load_digits("test")
    classifier = classifier or load_classifier()
    generated, reference = classifier_features(images, classifier), classifier_features(test.images, classifier)
    return {
        "fd": frechet_distance(generated, reference),
        "kid": kernel_inception_distance(generated, reference),
        "memorized": memorization_fraction(images.float().clamp(-1, 1).cpu(), train.images, test.images),
    }
