"""CIFAR-10 data module (resattn/data): sources, validation, splits, statistics, loaders, resume."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from resattn.config.compose import compose
from resattn.data import CIFAR10DataModule, EpochBatchSampler, KerasAugment, StandardAugment, TrainLoader
from resattn.errors import DataError
from tests.helpers import config_error

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
LOG_NAME = "resattn.data"


def real_npz() -> Path | None:
    for folder in (os.environ.get("RESATTN_DATA_DIR"), REPO.parent / "shared" / "cifar10"):
        if folder and (Path(folder) / "cifar10.npz").is_file():
            return Path(folder) / "cifar10.npz"
    return None


# ------------------------------------------------------------------------------------- helpers


def unique_images(n: int, seed: int) -> np.ndarray:
    """``n`` distinct random uint8 images (distinct by construction: the first bytes encode the index)."""
    x = np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    idx = np.arange(n) + seed * 1_000_003
    x[:, 0, 0, 0], x[:, 0, 0, 1], x[:, 0, 0, 2] = idx % 256, (idx // 256) % 256, (idx // 65536) % 256
    return x


def write_npz(folder: Path, n_train: int = 60, n_test: int = 20, **override) -> Path:
    arrays = {
        "x_train": unique_images(n_train, 1),
        "y_train": np.arange(n_train) % 10,
        "x_test": unique_images(n_test, 2),
        "y_test": np.arange(n_test) % 10,
    }
    for key, value in override.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "cifar10.npz", **arrays)
    return folder


def small_dm(root: Path, **kw) -> CIFAR10DataModule:
    args = dict(root=root, train_size=40, val_size=10, batch_size=8, eval_batch_size=6, seed=3)
    args.update(kw)
    return CIFAR10DataModule(**args)


def synthetic_dm(**kw) -> CIFAR10DataModule:
    args = dict(source="synthetic", train_size=512, val_size=128, test_size=128, batch_size=64, eval_batch_size=128)
    args.update(kw)
    return CIFAR10DataModule(**args)


def hashes(x: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in x.flatten(1)}


# ------------------------------------------------------------------------------------ real data


@pytest.fixture(scope="module")
def real():
    path = real_npz()
    if path is None:
        pytest.skip("real cifar10.npz not found (RESATTN_DATA_DIR or ../shared/cifar10)")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler, logger = Keep(level=logging.INFO), logging.getLogger(LOG_NAME)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        dm = CIFAR10DataModule(root=path.parent, seed=0)
        dm.setup("fit")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    with np.load(path) as npz:
        arrays = {"x_train": npz["x_train"], "y_train": npz["y_train"], "y_test": npz["y_test"]}
    return dm, arrays, [r.getMessage() for r in records]


def test_real_split_sizes_and_disjointness(real):
    dm, arrays, messages = real
    assert dm.source_used == "npz"
    assert (len(dm.train_x), len(dm.val_x), len(dm.test_x)) == (30000, 5000, 10000)
    assert dm.train_x.shape[1:] == (3, 32, 32) and dm.train_x.dtype == torch.uint8
    x = arrays["x_train"]
    assert np.array_equal(dm.train_x[:5].permute(0, 2, 3, 1).numpy(), x[:5])  # pool = the first 30k
    assert np.array_equal(dm.val_x[-5:].permute(0, 2, 3, 1).numpy(), x[-5:])  # val = the last 5k of 50k
    assert np.array_equal(dm.train_y.numpy(), arrays["y_train"][:30000])
    assert np.array_equal(dm.test_y.numpy(), arrays["y_test"])
    pool = hashes(dm.train_x)
    assert not pool & hashes(dm.val_x) and not pool & hashes(dm.test_x)
    assert dm.overlap == {"val": 0, "test": 0}
    assert "data: source=npz train=30000 val=5000 test=10000 overlap(train,val)=0 overlap(train,test)=0 label_noise=0 changed=0" in messages


def test_real_pool_statistics(real):
    dm, arrays, _ = real
    pool = arrays["x_train"][:30000]
    s1 = np.zeros(3)
    s2 = np.zeros(3)
    for chunk in np.array_split(pool, 10):
        c = chunk.reshape(-1, 3).astype(np.float64) / 255.0
        s1 += c.sum(0)
        s2 += (c**2).sum(0)
    n = pool.shape[0] * 32 * 32
    mean = s1 / n
    std = np.sqrt(s2 / n - mean**2)
    assert np.abs(np.array(dm.mean) - mean).max() < 0.5 / 255
    assert np.abs(np.array(dm.std) - std).max() < 0.5 / 255
    # the well-known full-50k values, looser (the pool is 30k)
    assert np.abs(np.array(dm.mean) - (0.4914, 0.4822, 0.4465)).max() < 0.01
    assert np.abs(np.array(dm.std) - (0.2470, 0.2435, 0.2616)).max() < 0.01
    # every split is standardised with the pool statistics
    xv, _ = dm.prepare_batch(next(iter(dm.val_dataloader())), train=False)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    expected = (dm.val_x[:500].double() / 255 - m) / s
    assert torch.allclose(xv.double(), expected, atol=1e-4)


# ------------------------------------------------------------------------------- splits (synthetic)


def test_holdout_split_is_disjoint_and_logged(tmp_path, caplog):
    root = write_npz(tmp_path)
    dm = small_dm(root)
    with caplog.at_level(logging.INFO, logger=LOG_NAME):
        dm.setup()
    lines = [r.getMessage() for r in caplog.records if r.name == LOG_NAME]
    assert lines == ["data: source=npz train=40 val=10 test=20 overlap(train,val)=0 overlap(train,test)=0 label_noise=0 changed=0"]
    assert not hashes(dm.train_x) & hashes(dm.val_x)
    with np.load(root / "cifar10.npz") as npz:
        assert np.array_equal(dm.val_x.permute(0, 2, 3, 1).numpy(), npz["x_train"][50:])
        assert np.array_equal(dm.train_x.permute(0, 2, 3, 1).numpy(), npz["x_train"][:40])


def test_original_overlap_shares_exactly_val_size_images_and_warns(tmp_path, caplog):
    dm = small_dm(write_npz(tmp_path), val_source="original_overlap")
    with caplog.at_level(logging.INFO, logger=LOG_NAME):
        dm.setup()
    assert len(hashes(dm.train_x) & hashes(dm.val_x)) == 10
    assert torch.equal(dm.val_x, dm.train_x[30:40])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == LOG_NAME]
    assert len(warnings) == 1 and "leaked" in warnings[0].getMessage()
    assert "overlap(train,val)=10 overlap(train,test)=0" in caplog.text


def test_overlap_counts_content_not_indices(tmp_path, caplog):
    x_train = unique_images(60, 1)
    x_test = unique_images(20, 2)
    x_test[[2, 5, 7]] = x_train[[0, 11, 39]]  # three pool images reappear in the test set
    x_train[55] = x_train[3]  # one validation image duplicates a pool image
    dm = small_dm(write_npz(tmp_path, x_train=x_train, x_test=x_test))
    with caplog.at_level(logging.INFO, logger=LOG_NAME):
        dm.setup()
    assert "overlap(train,val)=1 overlap(train,test)=3" in caplog.text
    assert dm.overlap == {"val": 1, "test": 3}


def test_test_size_caps_the_test_set(tmp_path):
    dm = small_dm(write_npz(tmp_path), test_size=7)
    dm.setup()
    assert len(dm.test_x) == 7 and len(dm.test_dataloader()) == 2


def test_original_normalization_uses_each_splits_own_statistics(tmp_path):
    dm = small_dm(write_npz(tmp_path), normalization="original")
    dm.setup()
    for split in ("train", "val", "test"):
        x = getattr(dm, f"{split}_x")
        xn, _ = dm.prepare_batch((x, getattr(dm, f"{split}_y")), train=False, split=split)
        xd = x.double()
        mean = xd.mean(dim=(0, 2, 3), keepdim=True)
        std = xd.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
        assert torch.allclose(xn.double(), (xd - mean) / (std + 1e-6), atol=1e-4), split


def test_pool_normalization_uses_pool_statistics_everywhere(tmp_path):
    dm = small_dm(write_npz(tmp_path))
    dm.setup()
    pool = dm.train_x.double() / 255
    mean = pool.mean(dim=(0, 2, 3), keepdim=True)
    std = pool.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
    assert np.allclose(dm.mean, mean.flatten().numpy()) and np.allclose(dm.std, std.flatten().numpy())
    for split in ("val", "test"):
        x = getattr(dm, f"{split}_x")
        xn, _ = dm.prepare_batch((x, getattr(dm, f"{split}_y")), train=False, split=split)
        assert torch.allclose(xn.double(), (x.double() / 255 - mean) / std, atol=1e-4)


# ------------------------------------------------------------------------------------ synthetic


def test_synthetic_sizes_determinism_and_disjointness(caplog):
    with caplog.at_level(logging.INFO, logger=LOG_NAME):
        a = synthetic_dm()
        a.setup()
    assert (
        "data: source=synthetic train=512 val=128 test=128 overlap(train,val)=0 overlap(train,test)=0 label_noise=0 changed=0"
    ) in caplog.text
    b, c = synthetic_dm(), synthetic_dm(synthetic_seed=1)
    b.setup()
    c.setup()
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.train_x, c.train_x)
    assert torch.bincount(a.train_y, minlength=10).min() >= 45


def test_synthetic_is_learnable_by_a_tiny_net():
    torch.manual_seed(0)
    dm = synthetic_dm(augment=StandardAugment())
    dm.setup()
    net = torch.nn.Sequential(torch.nn.AvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(192, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    loader = dm.train_dataloader()
    for epoch in range(3):
        loader.set_epoch(epoch)
        for batch in loader:
            x, y = dm.prepare_batch(batch, train=True)
            loss = torch.nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        correct = sum((net(dm.prepare_batch(b, False)[0]).argmax(1) == b[1]).sum().item() for b in dm.val_dataloader())
    assert correct / len(dm.val_x) > 0.5


def test_synthetic_config_composes_and_instantiates():

    cfg = compose("train", ["data=synthetic", "augment=standard"])
    dm = instantiate(cfg.data, augment=instantiate(cfg.augment))
    assert dm.source == "synthetic" and isinstance(dm.augment, StandardAugment)
    assert (dm.train_size, dm.val_size, dm.test_size) == (512, 128, 128)
    assert dm.seed == cfg.seed
    no_aug = instantiate(cfg.data, augment=None)
    no_aug.setup()
    batch = next(iter(no_aug.train_dataloader()))
    x, _ = no_aug.prepare_batch(batch, train=True)
    assert torch.equal(x, no_aug.prepare_batch(batch, train=False)[0])


def test_cifar10_config_defaults():
    cfg = compose("train", ["data=cifar10"]).data
    assert cfg._target_ == "resattn.data.CIFAR10DataModule"
    assert (cfg.source, cfg.train_size, cfg.val_size, cfg.test_size) == ("auto", 30000, 5000, None)
    assert (cfg.val_source, cfg.normalization, cfg.device_resident) == ("holdout", "pool", "auto")


# ----------------------------------------------------------------------------------- batches


def test_prepare_batch_augments_only_in_training(tmp_path):
    dm = small_dm(write_npz(tmp_path), augment=KerasAugment())
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    x, y, seed = batch
    assert x.dtype == torch.uint8 and x.shape == (8, 3, 32, 32) and y.dtype == torch.int64
    assert seed.dtype == torch.int64 and seed.ndim == 0
    plain, _ = dm.prepare_batch(batch, train=False)
    aug1, _ = dm.prepare_batch(batch, train=True)
    aug2, _ = dm.prepare_batch((x, y, int(seed)), train=True)  # int seed (after on_before_batch_transfer)
    assert aug1.dtype == torch.float32 and not torch.equal(aug1, plain)
    assert torch.equal(aug1, aug2)
    assert dm.on_before_batch_transfer(batch, 0)[2] == int(seed)
    # no trainer attached: the hook treats the batch as evaluation
    assert torch.equal(dm.on_after_batch_transfer(batch, 0)[0], plain)


# -------------------------------------------------------------------------------------- loaders


def drain(loader) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    return [tuple(t.clone() for t in b) for b in loader]


def arange_loader(n=103, batch=10, seed=5, **kw) -> TrainLoader:
    x = torch.arange(n, dtype=torch.int64).view(n, 1, 1, 1).to(torch.uint8).expand(n, 3, 2, 2).contiguous()
    y = torch.arange(n, dtype=torch.int64)  # y = index: batches are identified by their labels
    return TrainLoader(x, y, batch, seed, **kw)


@pytest.mark.parametrize("resident", [True, False], ids=["device_resident", "dataloader"])
def test_train_loader_steps_order_and_epochs(resident):
    loader = arange_loader(device_resident=resident)
    assert len(loader) == 10  # floor(103 / 10): the last partial batch is dropped
    e0 = drain(loader)
    assert len(e0) == 10 and all(len(b[1]) == 10 for b in e0)
    ids = torch.cat([b[1] for b in e0])
    assert len(set(ids.tolist())) == 100
    assert torch.equal(e0[0][0][:, 0, 0, 0].long(), e0[0][1])  # images travel with their labels
    assert len({int(b[2]) for b in e0}) == 10  # one seed per batch
    again = drain(loader)
    assert all(torch.equal(a[1], b[1]) and int(a[2]) == int(b[2]) for a, b in zip(e0, again))
    loader.set_epoch(1)
    e1 = drain(loader)
    assert not torch.equal(torch.cat([b[1] for b in e1]), ids)
    assert {int(b[2]) for b in e1}.isdisjoint({int(b[2]) for b in e0})
    other = arange_loader(device_resident=resident)
    other.set_epoch(1)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(e1, drain(other)))


def test_backends_yield_identical_batches():
    a = drain(arange_loader(device_resident=True))
    b = drain(arange_loader(device_resident=False))
    c = drain(arange_loader(device_resident=False, num_workers=1))
    for x, y, z in zip(a, b, c):
        assert torch.equal(x[0], y[0]) and torch.equal(x[1], z[1]) and int(x[2]) == int(y[2]) == int(z[2])


@pytest.mark.parametrize("resident", [True, False], ids=["device_resident", "dataloader"])
def test_mid_epoch_resume_continues_exactly(resident):
    full = arange_loader(device_resident=resident)
    full.set_epoch(2)
    reference = drain(full)
    first = arange_loader(device_resident=resident)
    first.set_epoch(2)
    it = iter(first)
    seen = [next(it) for _ in range(4)]
    state = first.state_dict()
    assert (state["epoch"], state["batches_served"]) == (2, 4)
    resumed = arange_loader(device_resident=resident)
    resumed.load_state_dict(state)
    assert resumed.state_dict()["batches_served"] == 4
    resumed.set_epoch(2)
    rest = drain(resumed)
    assert len(rest) == 6
    for got, want in zip(seen + rest, reference):
        assert torch.equal(got[1], want[1]) and int(got[2]) == int(want[2])
    # the next epoch starts from its beginning again
    resumed.set_epoch(3)
    assert len(drain(resumed)) == 10


def test_resume_from_an_epoch_end_starts_the_next_epoch_fully():
    loader = arange_loader()
    drain(loader)
    state = loader.state_dict()
    assert (state["epoch"], state["batches_served"]) == (0, 10)
    resumed = arange_loader()
    resumed.load_state_dict(state)
    resumed.set_epoch(1)
    assert len(drain(resumed)) == 10


def test_rank_shards_are_disjoint_and_equal():
    shards = [drain(arange_loader(n=103, batch=10, rank=r, world_size=3, device_resident=True)) for r in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]  # floor(103 / (10 * 3))
    ids = [set(torch.cat([b[1] for b in s]).tolist()) for s in shards]
    assert all(len(i) == 30 for i in ids)
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    seeds = [{int(b[2]) for b in s} for s in shards]
    assert not (seeds[0] & seeds[1] or seeds[1] & seeds[2])
    # the union is what a single process would see in its first 9 batches
    single = drain(arange_loader(n=103, batch=10))
    assert set().union(*ids) == set(torch.cat([b[1] for b in single[:9]]).tolist())


def test_sampler_permutation_depends_only_on_seed_and_epoch():
    a, b = EpochBatchSampler(50, 7, seed=1), EpochBatchSampler(50, 7, seed=1)
    b.set_epoch(4)
    b.set_epoch(0)
    assert torch.equal(a.permutation(), b.permutation())
    assert not torch.equal(a.permutation(0), a.permutation(1))
    assert not torch.equal(a.permutation(0), EpochBatchSampler(50, 7, seed=2).permutation(0))


def test_eval_loaders_cover_every_image_in_order(tmp_path):
    dm = small_dm(write_npz(tmp_path, n_test=20))
    dm.setup()
    val = list(dm.val_dataloader())
    assert [len(b[1]) for b in val] == [6, 4]
    assert torch.equal(torch.cat([b[0] for b in val]), dm.val_x)
    test = list(dm.test_dataloader())
    assert len(dm.test_dataloader()) == 4 and torch.equal(torch.cat([b[1] for b in test]), dm.test_y)
    assert len(dm.train_dataloader()) == 5  # floor(40 / 8)


# --------------------------------------------------------------------------------- lightning


class _Recorder:
    """Tiny LightningModule that records each training batch's fingerprint."""

    @staticmethod
    def make(record: list, val_record: list):
        import pytorch_lightning as pl

        class Net(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.lin = torch.nn.Linear(3 * 32 * 32, 10)

            def training_step(self, batch, batch_idx):
                x, y = batch
                record.append((self.current_epoch, batch_idx, round(float(x.double().sum()), 3), y.tolist()))
                return torch.nn.functional.cross_entropy(self.lin(x.flatten(1)), y)

            def validation_step(self, batch, batch_idx):
                x, y = batch
                val_record.append((x.dtype, float(x.double().sum())))

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.01)

        return Net()


def _trainer(tmp_path, **kw):
    import pytorch_lightning as pl

    args = dict(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1,
        default_root_dir=str(tmp_path),
    )
    args.update(kw)
    return pl.Trainer(**args)


@pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`")
def test_lightning_epochs_hooks_and_mid_epoch_resume(tmp_path):
    from pytorch_lightning.callbacks import ModelCheckpoint

    def dm():
        return synthetic_dm(train_size=256, val_size=64, test_size=64, batch_size=32, augment=KerasAugment(), seed=7)

    full, val_full = [], []
    _trainer(tmp_path / "a", enable_checkpointing=False).fit(_Recorder.make(full, val_full), datamodule=dm())
    assert len(full) == 16 and [r[:2] for r in full[:9]] == [(0, i) for i in range(8)] + [(1, 0)]
    assert full[0][3] != full[8][3]  # Lightning's set_epoch reached the sampler: new order in epoch 1
    assert val_full and all(dtype == torch.float32 for dtype, _ in val_full)
    # the hook augmented training batches with the batch's own seed, and left validation alone
    ref = dm()
    ref.setup()
    batch = next(iter(ref.train_dataloader()))
    assert full[0][2] == round(float(ref.prepare_batch(batch, train=True)[0].double().sum()), 3)
    assert full[0][2] != round(float(ref.prepare_batch(batch, train=False)[0].double().sum()), 3)
    val_plain = ref.prepare_batch(next(iter(ref.val_dataloader())), train=False)[0]
    assert val_full[0][1] == pytest.approx(float(val_plain.double().sum()), abs=1e-3)

    first, _ = [], []
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=11, save_top_k=-1, save_last=False)
    _trainer(tmp_path / "b", callbacks=[ckpt]).fit(_Recorder.make(first, []), datamodule=dm())
    assert first == full  # augmentation and order are reproducible run to run
    path = next(p for p in (tmp_path / "ckpt").iterdir() if "step=11" in p.name)
    state = torch.load(path, weights_only=False)["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]
    assert (state["epoch"], state["batches_served"]) == (1, 3)

    resumed = []
    _trainer(tmp_path / "c", enable_checkpointing=False).fit(_Recorder.make(resumed, []), datamodule=dm(), ckpt_path=str(path))
    assert resumed == full[11:]


# -------------------------------------------------------------------------------------- errors


def test_missing_root(tmp_path):
    dm = CIFAR10DataModule(root=tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"data.root=.*nowhere does not exist"):
        dm.setup()


def test_no_data_found_names_both_options(tmp_path):
    with pytest.raises(DataError) as info:
        CIFAR10DataModule(root=tmp_path).setup()
    msg = str(info.value)
    assert "cifar10.npz" in msg and "cifar-10-batches-py" in msg and "data.download=true" in msg
    assert "\n" not in msg


def test_explicit_sources_missing(tmp_path):
    with pytest.raises(DataError, match="data.source=npz but .*cifar10.npz does not exist"):
        CIFAR10DataModule(root=tmp_path, source="npz").setup()
    with pytest.raises(DataError, match="data.source=torchvision but .*cifar-10-batches-py does not exist"):
        CIFAR10DataModule(root=tmp_path, source="torchvision").setup()


@pytest.mark.parametrize(
    "override, pattern",
    [
        ({"y_test": None}, r"missing key\(s\) y_test"),
        ({"x_train": np.zeros((60, 32, 32), np.uint8)}, r"x_train has shape \(60, 32, 32\); expected \(N, 32, 32, 3\)"),
        ({"x_test": np.zeros((20, 3, 32, 32), np.uint8)}, r"x_test has shape \(20, 3, 32, 32\)"),
        ({"x_train": np.zeros((60, 32, 32, 3), np.float32)}, r"x_train has dtype float32; expected uint8"),
        ({"y_train": np.full(60, 10)}, r"y_train has labels in \[10, 10\]; expected class indices 0..9"),
        ({"y_test": -np.ones(20, np.int64)}, r"y_test has labels in \[-1, -1\]"),
        ({"y_train": np.zeros(60, np.float32)}, r"y_train has dtype float32; expected integer labels"),
        ({"y_train": np.zeros(59, np.int64)}, r"x_train holds 60 images but y_train holds 59 labels"),
    ],
    ids=["missing-key", "shape-3d", "shape-chw", "dtype", "label-high", "label-negative", "label-float", "count"],
)
def test_invalid_arrays(tmp_path, override, pattern):
    dm = small_dm(write_npz(tmp_path, **override))
    with pytest.raises(DataError, match=pattern):
        dm.setup()


def test_unreadable_npz(tmp_path):
    (tmp_path / "cifar10.npz").write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="not a readable numpy .npz"):
        small_dm(tmp_path).setup()


def test_sizes_too_large_for_the_file(tmp_path):
    root = write_npz(tmp_path, n_train=60, n_test=20)
    with pytest.raises(DataError, match=r"data.train_size=40 \+ data.val_size=30 exceeds the 60 training images"):
        small_dm(root, val_size=30).setup()
    with pytest.raises(DataError, match="data.train_size=70 exceeds the 60 training images"):
        small_dm(root, train_size=70, val_source="original_overlap").setup()
    with pytest.raises(DataError, match="data.test_size=25 exceeds the 20 test images"):
        small_dm(root, test_size=25).setup()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data.source=web"], "data.source='web': not supported; expected one of auto, npz, torchvision, synthetic"),
        (["data.val_source=random"], "data.val_source='random': not supported; expected one of holdout, original_overlap"),
        (["data.normalization=batch"], "data.normalization='batch': not supported; expected one of pool, original"),
        (["data.device_resident=maybe"], "data.device_resident='maybe': not supported; expected one of auto, True, False"),
        (["data.train_size=0"], "data.train_size=0: out of range; expected an integer >= 1"),
        (["data.val_size=-5"], "data.val_size=-5: out of range; expected an integer >= 1"),
        (["data.test_size=0"], "data.test_size=0: out of range; expected an integer >= 1 or null"),
        (["data.batch_size=0"], "data.batch_size=0: out of range; expected an integer >= 1"),
        (["data.eval_batch_size=1.5"], "data.eval_batch_size=1.5: wrong type (float); expected an integer >= 1"),
        (["data.seed=null"], "data.seed=None: missing value; expected an integer in [0, 4294967295]"),
        (["data=cifar10", "data.train_size=46000"], "data.train_size=46000 + data.val_size=5000: out of range"),
        (
            ["data=cifar10", "data.train_size=50001", "data.val_source=original_overlap"],
            "data.train_size=50001: out of range; CIFAR-10 has 50000 training images",
        ),
        (["data=cifar10", "data.test_size=10001"], "data.test_size=10001: out of range; CIFAR-10 has 10000 test images"),
        (
            ["data.val_size=600", "data.train_size=500", "data.val_source=original_overlap"],
            "data.val_size=600: out of range; with data.val_source=original_overlap it must be <= data.train_size=500",
        ),
        (["data.batch_size=600", "data.train_size=500"], "data.batch_size=600: out of range; expected <= data.train_size=500"),
    ],
)
def test_invalid_config_fails_early(overrides, message):
    """Every data value is checked when the config is composed and validated, before the module is built."""
    assert message in config_error(*overrides)


def test_env_var_sets_the_default_root(tmp_path, monkeypatch):
    monkeypatch.setenv("RESATTN_DATA_DIR", str(write_npz(tmp_path)))
    dm = CIFAR10DataModule(train_size=40, val_size=10, batch_size=8)
    assert dm.root == tmp_path
    dm.setup()
    assert dm.source_used == "npz"


def test_make_train_downloads_only_without_a_local_copy_and_offline_names_the_npz(tmp_path, monkeypatch):
    """``python3 make.py train`` adds ``data.download=true``; a local copy is used as is; offline is one clear error."""
    import sys
    from urllib.error import URLError

    import torchvision

    from resattn.validation import check_config

    sys.path.insert(0, str(REPO))
    import make

    assert make.with_download(["experiment=improved"]) == ["experiment=improved", "data.download=true"]
    assert make.with_download(["data.download=false"]) == ["data.download=false"]
    check_config(compose("train", [f"data.root={tmp_path / 'fresh'}", "data.download=true"]))  # no folder yet: fine

    def offline(self) -> None:
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", offline)
    present = small_dm(write_npz(tmp_path / "present"), download=True)
    present.prepare_data()  # the npz is there: nothing is downloaded
    present.setup("fit")
    with pytest.raises(DataError, match=r"downloading CIFAR-10 into .*fresh failed \(URLError.*cifar10\.npz.*RESATTN_DATA_DIR"):
        small_dm(tmp_path / "fresh", download=True).prepare_data()
