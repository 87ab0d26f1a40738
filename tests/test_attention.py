"""Issue 13: attention maps, the paper's mask activations and label noise.

* ``python -m resattn.attention_maps`` writes the grid for arl and nal runs and refuses ``attention=none``
  and checkpoints whose weights do not fit (like ``eval.py``) with one line; the masks come from hooks, the
  forward is unchanged; the TensorBoard callback logs them;
* ``model.mask_activation=mixed|channel|spatial`` have the paper's semantics and the same parameter
  counts, and the smoke run learns with each;
* ``data.label_noise=p`` changes exactly round(p·N) pool labels to other classes, fixed by the data seed,
  never validation or test labels; ``hparams_search=label_noise`` is the named sweep.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resattn.artifacts.attention_grids import map_titles
from resattn.data.noise import corrupt_labels
from resattn.errors import EXIT_USER_ERROR
from resattn.models.attention import MaskActivation
from resattn.models.masks import attention_maps, mask_branches
from resattn.training.build import build_datamodule, module_from_config
from resattn.training.checkpoint_files import run_config_of
from resattn.training.fit import train
from resattn.training.module import ResAttnModule
from tests.conftest import RUN_THREADS, TINY, compose_cfg, run_script
from tests.helpers import run_checkpoint
from tests.test_sweeps import _compose_with_hydra

ONE_EPOCH = [*TINY, "trainer.max_epochs=1", "test=false"]


def _module(tmp_path: Path, *overrides: str) -> ResAttnModule:
    return module_from_config(compose_cfg(tmp_path, [*TINY, *overrides])).eval()


# ------------------------------------------------------------------------------------------ attention maps


@pytest.mark.parametrize("attention", ["arl", "nal"])
def test_maps_come_from_hooks_and_leave_the_forward_unchanged(tmp_path: Path, attention: str) -> None:
    module = _module(tmp_path, f"model.attention={attention}")
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        reference = module.net(x)
        # the first attention module's mask, computed by hand from its own pre-activation unit
        first = module.net.blocks[1]
        expected_mask = first.mask(first.pre(module.net.blocks[0](module.net.stem(x))))
    logits, maps, sizes = attention_maps(module.net, x)
    torch.testing.assert_close(logits, reference)
    assert len(maps) == len(mask_branches(module.net)) == 2 and all(m.shape == (3, 32, 32) for m in maps)
    assert sizes == [(16, 16), (8, 8)] and map_titles(sizes) == ["attention 1, 16×16", "attention 2, 8×8"]
    upsampled = torch.nn.functional.interpolate(expected_mask.mean(1, keepdim=True), size=(32, 32), mode="bilinear", align_corners=False)[
        :, 0
    ]
    torch.testing.assert_close(maps[0], upsampled)
    assert not any(m._forward_hooks for _, m in mask_branches(module.net))  # hooks removed afterwards


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("maps") / "run"
    train(compose_cfg(run, [*ONE_EPOCH, "callbacks.attention_maps.every_n_epochs=1", "callbacks.attention_maps.n=4"]))
    return run


def test_maps_command_writes_the_grid(trained_run: Path, tmp_path: Path) -> None:
    proc = run_script("-m", "resattn.attention_maps", f"ckpt_path={trained_run}", "n=5", "split=val")
    assert proc.returncode == 0, proc.stderr[-2000:]
    png = trained_run / "attention_maps_val.png"
    assert f"attention maps: {png}" in proc.stdout
    with Image.open(png) as img:
        width, height = img.size
    assert width > height  # compact: 5 images in two blocks of (image + 2 masks) side by side, not a strip
    out = tmp_path / "grid.png"
    proc = run_script(
        "-m", "resattn.attention_maps", f"ckpt_path={trained_run / 'checkpoints' / 'last.ckpt'}", "n=2", "scale=shared", f"out={out}"
    )
    assert proc.returncode == 0 and out.is_file(), proc.stderr[-2000:]
    proc = run_script("-m", "resattn.attention_maps", f"ckpt_path={trained_run}", "scale=log")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == "error: scale='log' is not supported; allowed: per_map, shared"


@pytest.mark.parametrize("scale, stated", [("per_map", "scaled per map: 0 = its min, 1 = its max"), ("shared", "one scale for all maps")])
def test_grid_names_columns_by_stage_and_resolution_and_states_its_scale(trained_run: Path, scale: str, stated: str) -> None:
    from resattn.attention_maps import DEFAULTS, render
    from resattn.training.from_checkpoint import module_from_checkpoint

    module, stored, _ = module_from_checkpoint(trained_run)
    datamodule = build_datamodule(stored, module.preprocessing)
    datamodule.setup("test")
    fig = render(module, datamodule, "test", DEFAULTS["n"], module.class_names, title="a run", scale=scale)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["image", "attention 1, 16×16", "attention 2, 8×8"] * 2  # 8 images: two blocks of four rows
    bar = fig.axes[-1]
    assert stated in bar.get_ylabel() and "mean over channels" in bar.get_ylabel()
    low, high = bar.get_ylim()
    assert (low, high) == (0.0, 1.0) if scale == "per_map" else 0.0 < low < high < 1.0  # shared: the sigmoid masks' values
    assert sum(bool(ax.get_xlabel()) for ax in fig.axes) == DEFAULTS["n"]  # true / predicted below each image


def test_maps_are_logged_to_tensorboard_every_validation_epoch(trained_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trained_run / "tensorboard"), size_guidance={"images": 0}).Reload()
    assert "attention/maps" in events.Tags()["images"]
    assert len(events.Images("attention/maps")) == 1  # one validation epoch


def test_no_masks_is_one_clear_error(tmp_path: Path) -> None:
    run = tmp_path / "none"
    train(compose_cfg(run, [*ONE_EPOCH, "model.attention=none"]))
    proc = run_script("-m", "resattn.attention_maps", f"ckpt_path={run}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "model.attention=none" in last and "arl or nal" in last
    proc = run_script(
        "train.py", *ONE_EPOCH, "model.attention=none", "callbacks.attention_maps.every_n_epochs=1", f"hydra.run.dir={tmp_path / 'run'}"
    )
    assert proc.returncode == 2 and "callbacks.attention_maps.every_n_epochs=0" in proc.stderr.strip().splitlines()[-1]


def test_incompatible_checkpoint_is_eval_py_s_one_line_error(trained_run: Path, tmp_path: Path) -> None:
    """Weights that do not fit the stored model config: the same error line and exit status as eval.py, no grid."""
    ckpt = run_checkpoint(trained_run)
    run_config_of(ckpt)["model"]["width"] = 8  # trained with width 4
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save(ckpt, run / "checkpoints" / "last.ckpt")
    maps = run_script("-m", "resattn.attention_maps", f"ckpt_path={run}")
    evaluated = run_script("eval.py", f"ckpt_path={run}", f"hydra.run.dir={tmp_path / 'eval'}")
    lines = []
    for proc in (maps, evaluated):
        assert proc.returncode == EXIT_USER_ERROR and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        lines.append(proc.stderr.strip().splitlines()[-1])
    assert lines[0] == lines[1]
    assert lines[0].startswith(
        f"error: ckpt_path={run / 'checkpoints' / 'last.ckpt'}: incompatible model: "
        "net.stem.0.weight is (4, 3, 5, 5) in the checkpoint but (8, 3, 5, 5)"
    )
    assert sorted(p.relative_to(run).as_posix() for p in run.rglob("*")) == ["checkpoints", "checkpoints/last.ckpt"]


# -------------------------------------------------------------------------------------- mask activations


def test_mask_activations_follow_the_paper() -> None:
    x = torch.randn(4, 6, 5, 5) * 3
    torch.testing.assert_close(MaskActivation("mixed")(x), torch.sigmoid(x))
    channel = MaskActivation("channel")(x)
    torch.testing.assert_close(channel.norm(dim=1), torch.ones(4, 5, 5))  # unit L2 norm across channels
    torch.testing.assert_close(channel * x.norm(dim=1, keepdim=True), x)
    spatial = MaskActivation("spatial")(x)
    z = torch.logit(spatial.double())  # the standardised maps
    torch.testing.assert_close(z.mean(dim=(2, 3)), torch.zeros(4, 6, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std(dim=(2, 3), unbiased=False), torch.ones(4, 6, dtype=torch.float64), atol=1e-3, rtol=0)
    assert torch.isfinite(MaskActivation("spatial")(torch.zeros(1, 2, 3, 3))).all()  # constant map


def test_mask_activations_keep_the_parameter_counts() -> None:
    counts = {}
    for kind in ("mixed", "channel", "spatial"):
        proc = run_script("-m", "resattn.model_summary", f"model.mask_activation={kind}", "model.width=8")
        assert proc.returncode == 0, proc.stderr[-2000:]
        counts[kind] = [line for line in proc.stdout.splitlines() if line.endswith(tuple("0123456789")) and "params" in line]
    assert len(counts["mixed"]) == 3 and counts["channel"] == counts["mixed"] == counts["spatial"]


@pytest.mark.parametrize("kind", ["channel", "spatial"])
def test_smoke_run_learns_with_each_mask_activation(tmp_path: Path, kind: str) -> None:
    run = tmp_path / kind
    proc = run_script("train.py", "debug=smoke", f"model.mask_activation={kind}", f"hydra.run.dir={run}", env=RUN_THREADS)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((run / "metrics.json").read_text())["test/acc"] >= 0.90


# -------------------------------------------------------------------------------------------- label noise


def test_corrupt_labels_changes_exactly_round_p_n_to_other_classes() -> None:
    labels = np.arange(1001) % 10
    for p in (0.0, 0.1, 0.3, 0.5, 0.7, 1.0):
        noisy, index = corrupt_labels(labels, p, 10, seed=7)
        changed = np.flatnonzero(noisy != labels)
        assert len(index) == int(np.floor(p * 1001 + 0.5)) and changed.tolist() == index.tolist()
        again, _ = corrupt_labels(labels, p, 10, seed=7)
        assert np.array_equal(noisy, again)  # fixed by the seed (the same on resume and on every rank)
    assert not np.array_equal(corrupt_labels(labels, 0.3, 10, seed=8)[0], corrupt_labels(labels, 0.3, 10, seed=7)[0])
    noisy, index = corrupt_labels(np.zeros(20000, dtype=np.int64), 1.0, 10, seed=0)
    counts = np.bincount(noisy, minlength=10)
    assert counts[0] == 0 and np.all(np.abs(counts[1:] - 20000 / 9) < 250)  # uniform over the 9 other classes
    assert labels.tolist() == (np.arange(1001) % 10).tolist()  # input untouched


@pytest.mark.parametrize("val_source", ["holdout", "original_overlap"])
def test_label_noise_touches_only_the_training_pool(tmp_path: Path, caplog: pytest.LogCaptureFixture, val_source: str) -> None:
    overrides = [*TINY, f"data.val_source={val_source}"]
    clean = build_datamodule(compose_cfg(tmp_path / "clean", overrides))
    clean.setup("fit")
    with caplog.at_level(logging.INFO, logger="resattn.data"):
        noisy = build_datamodule(compose_cfg(tmp_path / "noisy", [*overrides, "data.label_noise=0.3"]))
        noisy.setup("fit")
    changed = int((noisy.train_y != clean.train_y).sum())
    assert changed == round(0.3 * 256) == 77
    assert torch.equal(noisy.val_y, clean.val_y) and torch.equal(noisy.test_y, clean.test_y)
    assert torch.equal(noisy.train_x, clean.train_x)
    assert any(r.getMessage().startswith("data: ") and r.getMessage().endswith("label_noise=0.3 changed=77") for r in caplog.records)


def test_label_noise_sweep_is_named() -> None:
    grid = _compose_with_hydra(["hparams_search=label_noise"])
    assert dict(grid.hydra.sweeper.params) == {"data.label_noise": "0.0,0.1,0.3,0.5,0.7", "model.attention": "arl,none"}
    assert str(grid.hydra.mode) == "RunMode.MULTIRUN"


def test_bad_label_noise_is_refused(tmp_path: Path) -> None:
    proc = run_script("train.py", *TINY, "data.label_noise=1.5", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2
    assert "data.label_noise" in proc.stderr.strip().splitlines()[-1]
