"""Batched augmentations (resattn/data/augment.py): ranges, exactness, flip rate, seeding, configs."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from resattn.config.compose import compose
from resattn.data import KerasAugment, NoAugment, StandardAugment
from resattn.data.augment import affine_grid
from tests.helpers import config_error

CONF = Path(__file__).resolve().parents[1] / "conf"
CENTRE = 15.5  # (32 - 1) / 2: centre of a 32-pixel axis in pixel-index coordinates


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_batch(n: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), generator=gen(seed), dtype=torch.uint8)


def marker_batch(n: int, row: int, col: int) -> torch.Tensor:
    x = torch.zeros(n, 3, 32, 32)
    x[:, :, row, col] = 255.0
    return x


def centroids(out: torch.Tensor) -> torch.Tensor:
    """Intensity centroid (row, col) of channel 0 of each image, ``N×2``."""
    m = out[:, 0].clamp_min(0)
    total = m.sum(dim=(1, 2))
    rows = torch.arange(32, dtype=m.dtype)
    r = (m.sum(dim=2) * rows).sum(dim=1) / total
    c = (m.sum(dim=1) * rows).sum(dim=1) / total
    return torch.stack([r, c], dim=1)


# ----------------------------------------------------------------------------------- exactness


def test_zero_ranges_are_exact_identity():
    x = random_batch()
    for aug in (
        KerasAugment(rotation=0, width_shift=0, height_shift=0, zoom=(1, 1), horizontal_flip=False),
        StandardAugment(padding=0, horizontal_flip=False),
        NoAugment(),
    ):
        out = aug(x, gen())
        assert out.dtype == torch.float32 and out.shape == x.shape
        assert torch.equal(out, x.float()), type(aug).__name__


@pytest.mark.parametrize(
    "aug",
    [
        KerasAugment(rotation=0, width_shift=0, height_shift=0, zoom=(1, 1), horizontal_flip=True),
        StandardAugment(padding=0, horizontal_flip=True),
    ],
    ids=["keras", "standard"],
)
def test_flip_only_gives_exact_flips_at_rate_one_half(aug):
    x = random_batch(4000, seed=1).float()
    out = aug(x, gen(2))
    same = (out == x).flatten(1).all(dim=1)
    flipped = (out == x.flip(-1)).flatten(1).all(dim=1)
    assert bool((same | flipped).all())
    rate = flipped.float().mean().item()
    assert abs(rate - 0.5) < 0.04, rate  # 4000 draws: sd 0.008


def test_keras_flip_rate_with_affine_active():
    # Flip folded into the affine matrix: a left-right asymmetric marker lands on the other side.
    aug = KerasAugment(rotation=0, width_shift=0, height_shift=0, zoom=(0.999, 1.0), horizontal_flip=True)
    out = aug(marker_batch(2000, 16, 4), gen(3))
    col = centroids(out)[:, 1]
    left, right = col < CENTRE, col > CENTRE
    assert bool((left | right).all())
    assert abs(right.float().mean().item() - 0.5) < 0.05


def test_float_and_uint8_inputs_agree():
    x = random_batch(8)
    aug = KerasAugment()
    assert torch.equal(aug(x, gen(5)), aug(x.float(), gen(5)))


# ---------------------------------------------------------------------------------- ranges


def test_keras_shift_moves_a_marker_at_most_the_allowed_fraction():
    aug = KerasAugment(rotation=0, width_shift=0.2, height_shift=0.1, zoom=(1, 1), horizontal_flip=False)
    out = aug(marker_batch(512, 16, 16), gen(6))
    d = centroids(out) - torch.tensor([16.0, 16.0])
    dr, dc = d[:, 0], d[:, 1]
    assert dr.abs().max() <= 0.1 * 32 + 1e-3 and dc.abs().max() <= 0.2 * 32 + 1e-3
    # the whole range is used, in both directions, independently per axis
    assert dc.max() > 5.5 and dc.min() < -5.5 and dr.max() > 2.7 and dr.min() < -2.7
    assert abs(torch.corrcoef(torch.stack([dr, dc]))[0, 1].item()) < 0.15


def test_keras_rotation_keeps_radius_and_bounds_angle():
    aug = KerasAugment(rotation=20, width_shift=0, height_shift=0, zoom=(1, 1), horizontal_flip=False)
    row, col = 16, 26
    out = aug(marker_batch(512, row, col), gen(7))
    c = centroids(out) - CENTRE
    r0 = math.hypot(row - CENTRE, col - CENTRE)
    radius = c.norm(dim=1)
    assert (radius - r0).abs().max() < 0.5
    a0 = math.atan2(row - CENTRE, col - CENTRE)
    angle = torch.rad2deg(torch.atan2(c[:, 0], c[:, 1]) - a0)
    assert angle.abs().max() <= 20 + 1.5
    assert angle.max() > 17 and angle.min() < -17


def test_keras_zoom_is_independent_per_axis_and_within_range():
    aug = KerasAugment(rotation=0, width_shift=0, height_shift=0, zoom=(0.8, 1.2), horizontal_flip=False)
    row = col = 24  # 8.5 px from the centre on both axes
    out = aug(marker_batch(512, row, col), gen(8))
    c = centroids(out) - CENTRE
    # Keras convention: input = z * output (about the centre), so a point at p moves to p / z.
    lo, hi = 8.5 / 1.2, 8.5 / 0.8
    assert c.min() > lo - 0.6 and c.max() < hi + 0.6
    assert (c[:, 0] - c[:, 1]).abs().max() > 2.0  # the two axes zoom independently


def _real_looking_images(n: int) -> torch.Tensor:
    """``n`` CIFAR-10 test images (``N×3×32×32`` float, 0-255) when the npz is at hand, else smooth synthetic
    scenes (gradients, discs and hard edges) that exercise interpolation the same way."""
    for folder in (os.environ.get("RESATTN_DATA_DIR"), Path(__file__).resolve().parents[2] / "shared" / "cifar10"):
        if folder and (Path(folder) / "cifar10.npz").is_file():
            with np.load(Path(folder) / "cifar10.npz") as data:
                return torch.from_numpy(data["x_test"][:n]).permute(0, 3, 1, 2).float()
    g = gen(20)
    rows, cols = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    out = torch.empty(n, 3, 32, 32)
    for i in range(n):
        a, b, r, cr, cc = (torch.rand(5, generator=g) * torch.tensor([4, 4, 10, 32, 32])).tolist()
        disc = ((rows - cr) ** 2 + (cols - cc) ** 2 < (r + 3) ** 2).float()
        for ch in range(3):
            out[i, ch] = (a * rows + b * cols + 120 * disc * (ch + 1) / 3 + 40 * (cols > 20).float()).clamp(0, 255)
    return out


KERAS_CASES = {
    "rotation": dict(rotation=20, width_shift=0, height_shift=0, zoom=(1, 1), horizontal_flip=False),
    "zoom": dict(rotation=0, width_shift=0, height_shift=0, zoom=(0.8, 1.2), horizontal_flip=False),
    "shift": dict(rotation=0, width_shift=0.2, height_shift=0.2, zoom=(1, 1), horizontal_flip=False),
    "flip": dict(rotation=0, width_shift=0, height_shift=0, zoom=(1, 1), horizontal_flip=True),
    "rotation_zoom": dict(rotation=20, width_shift=0, height_shift=0, zoom=(0.8, 1.2), horizontal_flip=False),
    "all": dict(),  # the original's ranges: rotation 20, shifts 0.2, zoom [0.8, 1.2], flip
}


def _keras_reference(x: torch.Tensor, p: dict[str, torch.Tensor], case: dict) -> np.ndarray:
    """keras-preprocessing 1.1.2's own transform of each image, as ``ImageDataGenerator.apply_transform`` does it."""
    kp = pytest.importorskip("keras_preprocessing.image", reason="keras-preprocessing 1.1.2 (dev extra) not installed")
    pytest.importorskip("scipy", reason="scipy (dev extra, needed by keras-preprocessing) not installed")
    aug = KerasAugment(**case)
    refs = []
    for i in range(x.shape[0]):
        img = x[i].permute(1, 2, 0).numpy().astype(np.float64)  # HWC, as Keras holds it
        ref = kp.apply_affine_transform(
            img,
            theta=p["theta"][i].item() if aug.rotation else 0,
            tx=p["shift_r"][i].item() if aug.height_shift else 0,  # Keras' tx is the row (height) shift
            ty=p["shift_c"][i].item() if aug.width_shift else 0,
            zx=p["zoom_r"][i].item() if aug.zoom != (1.0, 1.0) else 1,
            zy=p["zoom_c"][i].item() if aug.zoom != (1.0, 1.0) else 1,
            fill_mode="nearest",
            order=1,
        )
        if p["flip"][i]:
            ref = kp.flip_axis(ref, 1)
        refs.append(ref.transpose(2, 0, 1))
    return np.stack(refs)


@pytest.mark.parametrize("case", list(KERAS_CASES), ids=list(KERAS_CASES))
def test_keras_1_1_center_matches_keras_preprocessing(case):
    """``center=keras_1_1`` (the default) equals keras-preprocessing 1.1.2 within 1e-2 on the 0-255 scale."""
    x = _real_looking_images(24)
    aug = KerasAugment(**KERAS_CASES[case])
    assert aug.center == "keras_1_1"
    p = aug.sample_params(24, 32, 32, gen(10))
    ref = _keras_reference(x, p, KERAS_CASES[case])
    assert np.abs(aug.apply_params(x, p).numpy() - ref).max() <= 1e-2


@pytest.mark.parametrize("case", list(KERAS_CASES), ids=list(KERAS_CASES))
def test_geometric_center_differs_from_keras_only_where_it_turns(case):
    """The true centre (``center=geometric``) is not Keras 1.1 once rotation or zoom is on: the check above
    would fail with it; shifts and flips do not depend on the centre."""
    x = _real_looking_images(24)
    aug = KerasAugment(**KERAS_CASES[case], center="geometric")
    p = aug.sample_params(24, 32, 32, gen(10))
    diff = np.abs(aug.apply_params(x, p).numpy() - _keras_reference(x, p, KERAS_CASES[case])).max()
    if case in ("shift", "flip"):
        assert diff <= 1e-2
    else:
        assert diff > 5.0, diff


def test_geometric_center_matches_scipy_about_the_true_centre():
    """``center=geometric``: keras-preprocessing's geometry about ``((H-1)/2, (W-1)/2)`` (scipy, order=1, mode='nearest')."""
    ndi = pytest.importorskip("scipy.ndimage", reason="scipy (dev extra) not installed")
    aug = KerasAugment(center="geometric")
    x = random_batch(6, seed=9).float()
    p = aug.sample_params(6, 32, 32, gen(10))
    out = aug.apply_params(x, p)
    c0 = CENTRE
    offset = np.array([[1, 0, c0], [0, 1, c0], [0, 0, 1]])
    reset = np.array([[1, 0, -c0], [0, 1, -c0], [0, 0, 1]])
    for i in range(6):
        t = np.deg2rad(p["theta"][i].item())
        rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
        shift = np.array([[1, 0, p["shift_r"][i].item()], [0, 1, p["shift_c"][i].item()], [0, 0, 1]])
        zoom = np.diag([p["zoom_r"][i].item(), p["zoom_c"][i].item(), 1.0])
        m = offset @ rot @ shift @ zoom @ reset
        img = x[i].numpy().astype(np.float64)
        ref = np.stack([ndi.affine_transform(ch, m[:2, :2], m[:2, 2], order=1, mode="nearest") for ch in img])
        if p["flip"][i]:
            ref = ref[:, :, ::-1]
        assert np.abs(out[i].numpy() - ref).max() < 5e-3


def test_affine_grid_equals_torch_affine_grid():
    theta = torch.randn(7, 2, 3, generator=gen(11))
    for h, w in ((32, 32), (8, 12)):
        ref = F.affine_grid(theta, [7, 3, h, w], align_corners=False)
        assert torch.allclose(affine_grid(theta, h, w), ref, atol=1e-5)


def test_keras_nearest_interpolation_keeps_pixel_values():
    x = random_batch(8, seed=12)
    out = KerasAugment(interpolation="nearest")(x, gen(13))
    values = set(x.unique().tolist())
    assert set(out.unique().long().tolist()) <= values
    assert torch.equal(out, out.round())


def test_keras_fill_is_nearest_edge():
    # A constant image stays constant under any transform with edge fill (no black corners).
    x = torch.full((64, 3, 32, 32), 77.0)
    out = KerasAugment()(x, gen(14))
    assert torch.allclose(out, x, atol=1e-3)


def test_standard_crop_offsets_and_zero_padding():
    aug = StandardAugment(padding=4, horizontal_flip=False)
    out = aug(marker_batch(512, 16, 16), gen(15))
    pos = out[:, 0].flatten(1).argmax(dim=1)
    r, c = pos // 32, pos % 32
    assert (out[:, 0].flatten(1) > 0).sum(dim=1).eq(1).all()  # integer shift: the pixel is copied intact
    assert (r - 16).abs().max() == 4 and (c - 16).abs().max() == 4
    assert set((r - 16).tolist()) == set(range(-4, 5))
    white = aug(torch.full((512, 3, 32, 32), 255, dtype=torch.uint8), gen(16))
    black_rows = (white[:, 0] == 0).all(dim=2).sum(dim=1)
    black_cols = (white[:, 0] == 0).all(dim=1).sum(dim=1)
    assert black_rows.max() == 4 and black_cols.max() == 4
    assert ((white == 0) | (white == 255)).all()


# ------------------------------------------------------------------------------------ seeding


@pytest.mark.parametrize("aug", [KerasAugment(), StandardAugment()], ids=["keras", "standard"])
def test_same_seed_same_batch_different_seed_different_batch(aug):
    x = random_batch(32, seed=17)
    a, b, c = aug(x, gen(1)), aug(x, gen(1)), aug(x, gen(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # one independent draw per image: images of one batch are transformed differently
    same_image = random_batch(1, seed=18).expand(32, -1, -1, -1)
    out = aug(same_image, gen(3))
    assert len({tuple(o.flatten()[:64].tolist()) for o in out}) > 16


# ------------------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["augment.zoom=[1.2,0.8]"], "augment.zoom=[1.2, 0.8]: out of range; expected a pair [lo, hi] of zoom factors"),
        (["augment.zoom=0.2"], "augment.zoom"),
        (["augment.interpolation=bicubic"], "augment.interpolation='bicubic': not supported; expected one of bilinear, nearest"),
        (["augment.width_shift=1.5"], "augment.width_shift=1.5: out of range"),
        (["augment.rotation=-5"], "augment.rotation=-5.0: out of range"),
        (["augment.fill_mode=wrap"], "augment.fill_mode='wrap': not supported"),
        (["augment.center=middle"], "augment.center='middle': not supported; expected one of keras_1_1, geometric"),
        (["augment=standard", "augment.padding=-1"], "augment.padding=-1: out of range; expected an integer >= 0"),
        (["augment=standard", "augment.rotation=5"], "no key rotation in augment; allowed: padding, horizontal_flip"),
    ],
)
def test_invalid_augment_config_is_one_config_error(overrides, message):
    assert message in config_error("augment=keras", *overrides)


def test_augment_configs_instantiate():
    def group(name: str) -> Any:
        return instantiate(compose("train", [f"augment={name}"]).augment)

    keras = group("keras")
    assert isinstance(keras, KerasAugment)
    assert (keras.rotation, keras.width_shift, keras.height_shift, keras.zoom) == (20.0, 0.2, 0.2, (0.8, 1.2))
    assert keras.horizontal_flip and keras.interpolation == "bilinear" and keras.fill_mode == "nearest"
    assert keras.center == "keras_1_1"
    assert group("keras").center == instantiate(compose("train", ["experiment=original_adam_base"]).augment).center
    standard = group("standard")
    assert isinstance(standard, StandardAugment) and standard.padding == 4 and standard.horizontal_flip
    assert isinstance(group("none"), NoAugment)
