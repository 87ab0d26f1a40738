"""Training app (issue 4): experiments, outputs, resume exactness, eval parity, schedule and L2 semantics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from resattn.training.build import module_from_config
from resattn.training.checkpoint_files import preprocessing_of, run_config_of
from resattn.training.evaluate import evaluate
from resattn.training.fit import train
from tests.conftest import TINY, compose_cfg, run_script
from tests.helpers import assert_same_weights, run_checkpoint, run_state

EXPERIMENTS = ["original_sgd_base", "original_adam_base", "original_regularized", "original_mini_paper", "original_attention56", "improved"]
SMALL_DATA = ["data.train_size=64", "data.val_size=32", "data.test_size=32", "data.batch_size=16"]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_survives_fast_dev_run(tmp_path: Path, experiment: str) -> None:
    cfg = compose_cfg(tmp_path, [f"experiment={experiment}", *TINY, *SMALL_DATA, "trainer.fast_dev_run=true"])
    assert cfg.task_name == experiment
    assert cfg.data.val_source == "holdout" and cfg.data.normalization == "pool"  # honest protocol by default
    metrics = train(cfg)
    assert 0.0 <= metrics["test/acc"] <= 1.0


@pytest.mark.parametrize("experiment", ["paper_attention56", "paper_attention92"])
def test_paper_presets_hold_the_papers_recipe_and_run(tmp_path: Path, experiment: str) -> None:
    cfg = compose_cfg(tmp_path / "cfg", [f"experiment={experiment}"])
    assert cfg.model.trunk_depth == 2 and cfg.augment.padding == 4 and cfg.augment.horizontal_flip
    assert (cfg.optimizer.lr, cfg.optimizer.momentum, cfg.optimizer.nesterov, cfg.optimizer.weight_decay) == (0.1, 0.9, True, 1e-4)
    assert (cfg.data.batch_size, cfg.data.train_size, cfg.data.val_size, cfg.data.val_source) == (64, 45000, 5000, "holdout")
    assert list(cfg.scheduler.scheduler.milestones) == [64000, 96000] and cfg.scheduler.interval == "step"
    assert (cfg.trainer.max_steps, cfg.trainer.max_epochs) == (160000, -1)
    run = tmp_path / "run"
    result = run_script("train.py", f"experiment={experiment}", *TINY, "trainer.fast_dev_run=2", f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-2000:]
    refused = run_script(
        "train.py", f"experiment={experiment}", "scale=cpu", *TINY, "trainer.max_epochs=-1", f"hydra.run.dir={tmp_path / 'cpu'}"
    )
    assert refused.returncode == 2 and "trainer.max_steps=160000" in refused.stderr.strip().splitlines()[-1]


def test_seed_experiments_reproduce_notes_hyperparameters(tmp_path: Path) -> None:
    sgd = compose_cfg(tmp_path, ["experiment=original_sgd_base"])
    assert sgd.optimizer._target_ == "torch.optim.SGD" and sgd.optimizer.nesterov and sgd.optimizer.momentum == 0.9
    assert sgd.optimizer.lr == 1e-4 and sgd.data.batch_size == 128 and sgd.trainer.max_epochs == 60
    assert sgd.callbacks.early_stopping.patience == 15 and sgd.callbacks.early_stopping.monitor == "val/acc"
    assert sgd.augment._target_.endswith("KerasAugment") and sgd.data.train_size == 30000
    reg = compose_cfg(tmp_path, ["experiment=original_regularized"])
    assert reg.optimizer._target_ == "torch.optim.Adam"
    assert (reg.regularization.head_norm, reg.regularization.dropout, reg.regularization.l2) == (True, 0.4, 0.01)
    paper = compose_cfg(tmp_path, ["experiment=original_mini_paper"])
    assert paper.data.batch_size == 64 and paper.trainer.max_epochs == 80 and paper.model.stem_norm is False
    a56 = compose_cfg(tmp_path, ["experiment=original_attention56"])
    assert a56.data.train_size == 45000 and a56.callbacks.early_stopping.patience == 10


def test_original_step_schedule_matches_notes(tmp_path: Path) -> None:
    cfg = compose_cfg(tmp_path, ["scheduler=original_step", "optimizer=adam", "optimizer.lr=1e-4", "model.width=4"])
    module = module_from_config(cfg)
    optim = module.configure_optimizers()
    opt, sched = optim["optimizer"], optim["lr_scheduler"]["scheduler"]
    assert optim["lr_scheduler"]["interval"] == "epoch"
    lrs = []
    for _epoch in range(52):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    for epoch, expected in [(0, 1e-4), (20, 1e-4), (21, 1e-5), (50, 1e-5), (51, 1e-6)]:
        assert lrs[epoch] == pytest.approx(expected, rel=1e-9), epoch


def test_l2_gradient_is_keras_semantics(tmp_path: Path) -> None:

    cfg = compose_cfg(tmp_path, ["model.width=4", "regularization.l2=0.3"])
    module = module_from_config(cfg)
    module.l2_penalty().backward()
    w = module.net.classifier.weight
    torch.testing.assert_close(w.grad, 2 * 0.3 * w.detach())
    assert module.net.stem[0].weight.grad is None  # head scope: nothing else is penalised


def test_run_writes_all_outputs(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    metrics = train(compose_cfg(run, [*TINY, "trainer.max_epochs=5"]))
    on_disk = json.loads((run / "metrics.json").read_text())
    for key in ("val/acc_best", "test/acc", "test/loss", "epochs", "train_time_s", "best_ckpt"):
        assert key in on_disk, key
    assert on_disk["test/acc"] == pytest.approx(float(metrics["test/acc"]))
    assert on_disk["epochs"] == 5 and (run / on_disk["best_ckpt"]).is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert on_disk["test/acc"] > 0.3, "synthetic data is learnable: five short epochs beat chance (0.1) clearly"
    for png in ("curves.png", "confusion_matrix.png", "last_layer_hist.png"):
        with Image.open(run / png) as img:
            assert img.size[0] > 100
    assert (run / "csv" / "metrics.csv").read_text().count("val/acc") >= 1
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"histograms": 0}).Reload()
    assert any(tag.startswith("weights/") for tag in events.Tags()["histograms"])
    assert {"val/acc", "train/loss", "lr"} <= set(events.Tags()["scalars"])


def test_early_stopping_stops(tmp_path: Path) -> None:
    overrides = [*TINY, "trainer.max_epochs=6", "callbacks.early_stopping.patience=1", "callbacks.early_stopping.min_delta=0.5"]
    metrics = train(compose_cfg(tmp_path, overrides))
    assert metrics["epochs"] == 2  # epoch 0 sets the best, epoch 1 fails to improve by 0.5 -> stop


def straight_and_resumed(tmp_path: Path, overrides: list[str]) -> tuple[dict, dict, dict, dict]:
    """A 3-epoch run, and the same run stopped after epoch 1 and resumed: (metrics, metrics, weights, weights).

    Dropout and Keras augmentation exercise every random stream that must be restored.
    """
    common = [*overrides, "regularization.dropout=0.3", "augment=keras", "trainer.max_epochs=3"]
    straight = train(compose_cfg(tmp_path / "straight", common))
    part = tmp_path / "part"
    train(compose_cfg(part, [*common, "trainer.max_epochs=1"]))
    resumed = train(compose_cfg(part, [*common, f"resume={part}"]))
    a, b = run_state(tmp_path / "straight"), run_state(part)
    assert a.keys() == b.keys()
    return straight, resumed, a, b


# Where classes a stored config names by ``_target_`` lived before the package layout of issue 19.
OLD_TARGETS = {"resattn.training.schedulers.": "resattn.schedulers.", "resattn.artifacts.loggers.": "resattn.loggers."}


def test_checkpoints_of_the_whole_config_module_evaluate_and_resume_bit_for_bit(tmp_path: Path) -> None:
    """Checkpoints written while ``ResAttnModule(cfg, preprocessing)`` took the whole run config (its
    ``save_hyperparameters()``: ``hparams_name="kwargs"``, ``hyper_parameters={"cfg", "preprocessing"}``) and
    classes lived at the old module paths (``resattn.schedulers.PiecewiseConstantLR``, the default schedule) still
    evaluate and resume: a run started before the module received its parts continues exactly."""
    common = [*TINY, "regularization.dropout=0.3", "trainer.max_epochs=2"]
    straight = train(compose_cfg(tmp_path / "straight", common))
    part = tmp_path / "part"
    first = train(compose_cfg(part, [*common, "trainer.max_epochs=1"]))
    for file in (part / "checkpoints").glob("*.ckpt"):
        ckpt = torch.load(file, map_location="cpu", weights_only=False)
        assert set(ckpt["hyper_parameters"]) == {"cfg", "preprocessing"}  # the layout every version writes
        old = {k: v for k, v in ckpt.items() if k not in ("hparams_name", "hyper_parameters")}
        old["hparams_name"] = "kwargs"
        stored = json.dumps(run_config_of(ckpt))
        for new, before in OLD_TARGETS.items():
            stored = stored.replace(f'"{new}', f'"{before}')
        assert '"resattn.schedulers.PiecewiseConstantLR"' in stored
        old["hyper_parameters"] = {"cfg": json.loads(stored), "preprocessing": preprocessing_of(ckpt)}
        torch.save(old, file)

    evaluated = evaluate(compose_cfg(tmp_path / "eval", [f"ckpt_path={part}"], "eval"))
    assert (evaluated["test/acc"], evaluated["test/loss"]) == (first["test/acc"], first["test/loss"])
    resumed = train(compose_cfg(part, [*common, f"resume={part}"]))
    assert_same_weights(tmp_path / "straight", part)
    assert (resumed["test/acc"], resumed["test/loss"]) == (straight["test/acc"], straight["test/loss"])


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed", "16-mixed"])
def test_resume_is_bitwise_identical(tmp_path: Path, precision: str) -> None:
    # 16-mixed also restores its gradient scaler.
    straight, resumed, a, b = straight_and_resumed(tmp_path, [*TINY, f"trainer.precision={precision}"])
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for key in ("val/acc_best", "test/acc", "test/loss", "epochs"):
        assert float(resumed[key]) == float(straight[key]), key


def test_cli_train_resume_and_eval(tmp_path: Path) -> None:
    original = tmp_path / "cli_run_before_move"
    args = [*TINY, "trainer.max_epochs=1", f"hydra.run.dir={original}"]
    first = run_script("train.py", *args)
    assert first.returncode == 0, first.stderr[-2000:]
    run = original.rename(tmp_path / "cli_run")  # checkpoint paths are run-relative: a moved run resumes
    resumed = run_script("train.py", f"resume={run}", "trainer.max_epochs=2")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 2  # continued in the same run directory, original overrides replayed
    assert (run / metrics["best_ckpt"]).is_file() and not original.exists()
    assert len(list((run / "checkpoints").glob("epoch_*.ckpt"))) == 1  # the old best was replaced, not leaked
    evaluated = run_script("eval.py", f"ckpt_path={run}", f"hydra.run.dir={tmp_path / 'eval'}")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    eval_metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert eval_metrics["test/acc"] == metrics["test/acc"]
    assert eval_metrics["test/loss"] == pytest.approx(metrics["test/loss"], rel=1e-6)
    assert (tmp_path / "eval" / "confusion_matrix.png").is_file()


def test_ckpt_path_starts_new_run_from_weights(tmp_path: Path) -> None:
    source = tmp_path / "source"
    train(compose_cfg(source, [*TINY, "trainer.max_epochs=1"]))
    ckpt = source / "checkpoints" / "last.ckpt"
    cfg = compose_cfg(tmp_path / "new", [*TINY, f"ckpt_path={ckpt}", "trainer.max_epochs=1", "optimizer.lr=1e-30", "test=false"])
    train(cfg)
    before, after = run_state(source), run_state(tmp_path / "new")
    # lr ~ 0 keeps the loaded kernels (BN running statistics still move with the new epoch's batches).
    torch.testing.assert_close(after["net.classifier.weight"], before["net.classifier.weight"])
    assert run_checkpoint(tmp_path / "new")["epoch"] == 0
