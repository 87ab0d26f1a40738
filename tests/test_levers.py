"""Issue 21: automatic precision, weight averaging (EMA), test-time augmentation and per-step logging.

* ``trainer.precision=auto``: the capability decision both ways (probes monkeypatched), the plan line of a real
  ``train.py`` run on this CPU (no native bf16: 32), and ``eval.py`` keeping the precision a run stored;
* ``ema=true``: validation, the best checkpoint and the test use the averaged weights (batch-norm statistics
  averaged alike), a SIGTERM-stopped and resumed ``train.py`` run ends bitwise equal to an uninterrupted one, and
  ``eval.py`` evaluates the averaged weights;
* ``tta``: the one function's arithmetic, ``none`` bit-for-bit today's evaluation, training untouched by ``flip``,
  ``eval.py`` using the stored mode unless told otherwise;
* logging: per-step learning rate and training loss, and the final metrics in TensorBoard's HParams view.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from resattn.artifacts.machine import device_line
from resattn.callbacks import RunPlan
from resattn.callbacks.ema import warmup_ema_avg_fn
from resattn.errors import CheckpointError
from resattn.training import precision as precision_mod
from resattn.training.build import build_datamodule, module_from_config
from resattn.training.checkpoint_files import run_config_of
from resattn.training.evaluate import evaluate
from resattn.training.fit import train
from resattn.training.module import ResAttnModule
from resattn.training.precision import auto_precision, choose_precision, resolve_precision
from resattn.training.tta import tta_logits
from resattn.validation import check_inputs
from tests.conftest import TINY, compose_cfg, run_script
from tests.helpers import config_error, run_checkpoint, run_state

SMALL = ["data.train_size=64", "data.val_size=32", "data.test_size=32", "data.batch_size=16", "data.eval_batch_size=16"]


def _metrics(run: Path) -> dict[str, Any]:
    return json.loads((run / "metrics.json").read_text())


def _evaluate(module: ResAttnModule, cfg: Any, stage: str = "test") -> dict[str, float]:
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False
    )
    run = trainer.test if stage == "test" else trainer.validate
    return run(module, datamodule=build_datamodule(OmegaConf.create(cfg)), verbose=False)[0]


def _module(ckpt: dict[str, Any], weights: str = "state_dict", **cfg_changes: Any) -> ResAttnModule:
    module = module_from_config({**run_config_of(ckpt), **cfg_changes})
    module.load_state_dict(ckpt[weights])
    return module


# --------------------------------------------------------------------------------------------- precision


@pytest.mark.parametrize(
    "caps, expected",
    [
        ({"amx_bf16": True, "cpu_name": "Xeon"}, "bf16-mixed"),
        ({"avx512_bf16": True, "cpu_name": "EPYC 9004"}, "bf16-mixed"),
        ({"avx512_f": True, "avx2": True, "cpu_name": "Xeon Skylake"}, "32"),  # AVX-512 without BF16: emulated
        ({"avx2": True, "cpu_name": "EPYC"}, "32"),
    ],
)
def test_auto_precision_on_cpu_follows_native_bf16(monkeypatch: pytest.MonkeyPatch, caps: dict, expected: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(precision_mod, "cpu_capabilities", lambda: caps)
    choice = auto_precision("auto")
    assert choice.value == expected
    assert caps["cpu_name"] in choice.reason and choice.describe().startswith(f"precision {expected} (auto: ")
    assert choose_precision("16-mixed", "auto").value == "16-mixed"  # an explicit value wins
    assert choose_precision(32, "cpu").describe() == "precision 32 (set explicitly)"


def test_auto_precision_on_cuda_follows_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Fake GPU")
    monkeypatch.setattr(precision_mod, "cpu_capabilities", lambda: {"amx_bf16": True})
    for native, expected in ((True, "bf16-mixed"), (False, "32")):
        monkeypatch.setattr(precision_mod, "cuda_bf16_native", lambda native=native: native)
        for accelerator in ("auto", "gpu", "cuda"):
            choice = auto_precision(accelerator)
            assert choice.value == expected and "Fake GPU" in choice.reason
    assert auto_precision("cpu").value == "bf16-mixed"  # trainer.accelerator=cpu: the CPU decides


def test_resolve_precision_writes_the_choice_into_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert compose_cfg(tmp_path, []).trainer.precision == "auto"  # the default (TINY pins 32)
    for caps, expected in (({"avx2": True}, "32"), ({"amx_bf16": True}, "bf16-mixed")):
        monkeypatch.setattr(precision_mod, "cpu_capabilities", lambda caps=caps: caps)
        cfg = compose_cfg(tmp_path, [*TINY, "trainer.precision=auto"])
        assert resolve_precision(cfg).value == expected and cfg.trainer.precision == expected
    explicit = compose_cfg(tmp_path, [*TINY, "trainer.precision=32"])
    assert resolve_precision(explicit).reason == "set explicitly" and explicit.trainer.precision == 32


def test_eval_keeps_the_precision_auto_chose_in_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run trained where auto meant bf16 stores bf16-mixed; eval.py here (auto: 32) evaluates in bf16 again."""
    monkeypatch.setattr(precision_mod, "cpu_capabilities", lambda: {"amx_bf16": True, "cpu_name": "AMX CPU"})
    run = tmp_path / "run"
    recorded = train(compose_cfg(run, [*TINY, *SMALL, "trainer.max_epochs=1", "trainer.precision=auto"]))
    assert run_config_of(run_checkpoint(run))["trainer"]["precision"] == "bf16-mixed"
    evaluated = run_script("eval.py", f"ckpt_path={run}", f"hydra.run.dir={tmp_path / 'eval'}")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    again = _metrics(tmp_path / "eval")
    assert (again["test/acc"], again["test/loss"]) == (recorded["test/acc"], recorded["test/loss"])


# ------------------------------------------------------------------------------- plan line and logging


def test_train_cli_plan_line_per_step_logs_and_hparams_view(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run = tmp_path / "run"
    args = [
        *TINY,
        "trainer.precision=auto",
        "trainer.log_every_n_steps=2",
        "callbacks.plan.warmup_steps=1",
        "callbacks.plan.measure_steps=2",
    ]
    result = run_script("train.py", *args, f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-2000:]
    plan = next(line for line in (run / "train.log").read_text().splitlines() if "plan: " in line)
    here = auto_precision("cpu")  # what auto means on this machine (AVX2 only: 32; native bf16: bf16-mixed)
    assert plan.endswith(f"; {here.describe()}"), plan
    # the checkpoint, the saved config and metrics.json all say what auto chose; metrics.json also where and how long
    assert run_config_of(run_checkpoint(run))["trainer"]["precision"] == here.value
    assert OmegaConf.load(run / ".hydra" / "config.yaml").trainer.precision == here.value
    recorded = _metrics(run)
    assert recorded["precision"] == here.value and recorded["device"] == device_line("cpu") and "cores" in recorded["device"]
    assert recorded["train_time_s"] < recorded["wall_time_s"] < recorded["train_time_s"] + 120

    steps = 2 * 8  # 2 epochs x 8 steps
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    lr_steps = [e.step for e in events.Scalars("lr-Adam")]
    loss_steps = [e.step for e in events.Scalars("train/loss_step")]
    assert len(lr_steps) == len(loss_steps) == steps // 2 and len(set(loss_steps)) == steps // 2
    assert len(events.Scalars("train/loss")) == len(events.Scalars("lr")) == 2  # the epoch metrics stay
    rows = list(csv.DictReader((run / "csv" / "metrics.csv").open()))
    assert sum(1 for r in rows if r.get("train/loss_step")) == steps // 2

    content = events.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {"hp/test/acc", "hp/val/acc_best", "hp/test/loss"} <= {m.name.tag for m in experiment.metric_infos}
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    hparams = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in session.hparams.items()}
    assert hparams["model/width"] == 4 and hparams["optimizer"] == "Adam" and hparams["trainer/precision"] == here.value
    assert hparams["tta"] == "none" and hparams["ema"] == 0  # torch writes booleans as numbers
    assert events.Scalars("hp/test/acc")[-1].value == pytest.approx(recorded["test/acc"])
    assert events.Scalars("hp/val/acc_best")[-1].value == pytest.approx(recorded["val/acc_best"])


def test_resume_keeps_the_precision_the_run_trained_in(tmp_path: Path) -> None:
    # A run started with trainer.precision=auto on another machine (simulated: trained in 64-true, which auto never
    # picks, and its saved override says auto), stopped mid-epoch and resumed here: auto is not decided again.
    run = tmp_path / "run"
    args = [*TINY, "trainer.precision=64-true"]
    stopped = run_script("train.py", *args, *_signal(5), f"hydra.run.dir={run}")
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    overrides = run / ".hydra" / "overrides.yaml"
    overrides.write_text(overrides.read_text().replace("trainer.precision=64-true", "trainer.precision=auto"))
    resumed = run_script("train.py", f"resume={run}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    here = auto_precision("cpu")
    line = next(x for x in (run / "train.log").read_text().splitlines() if "resume: from" in x)
    why = here.reason.removeprefix("auto: ")
    assert line.endswith(f"precision 64-true (kept from the resumed run; auto would choose {here.value} here: {why})"), line
    assert run_state(run)["net.classifier.weight"].dtype == torch.float64  # it trained on in 64-true
    assert run_config_of(run_checkpoint(run))["trainer"]["precision"] == "64-true" == _metrics(run)["precision"]
    assert OmegaConf.load(run / ".hydra" / "config.yaml").trainer.precision == "64-true"

    # An explicit other precision wins, and the plan says the run will not match an uninterrupted one.
    choice = resolve_precision(OmegaConf.create({"trainer": {"precision": "32"}}), resumed="64-true")
    assert choice.value == "32" and "trained in 64-true before, so it will not match" in choice.reason
    assert resolve_precision(OmegaConf.create({"trainer": {"precision": "auto"}}), resumed="64").value == "64"
    assert resolve_precision(OmegaConf.create({"trainer": {"precision": "32-true"}}), resumed="32").reason == "set explicitly"


def test_plan_counts_the_forwards_of_test_time_augmentation() -> None:
    from tests.test_scale import _fake_trainer

    # 24 x 234 steps at 0.4 s, plus validation: 5,000 images at a third of a training image's cost per forward
    # (none: 1, flip: 2, flip_translate: 6 forwards), over 29,952 training images per epoch.
    minutes = {
        tta: RunPlan(scale="cpu", tta=tta).plan(_fake_trainer(234, 24), step_s=0.4).split("about ")[1].split(" ")[0]
        for tta in ("none", "flip", "flip_translate")
    }
    assert minutes == {"none": "40", "flip": "42", "flip_translate": "50"}


# ------------------------------------------------------------------------------------------------- EMA


def _signal(step: int) -> list[str]:
    return ["+callbacks.stop._target_=tests.test_reliability.SignalAtStep", f"+callbacks.stop.step={step}"]


# 8 steps per epoch, 3 epochs; a fast average (decay 0.8) that starts at step 3, dropout and Keras augmentation:
# every state that must survive a stop (average, live weights, its step counter, RNG streams) matters.
EMA_RUN = [
    *TINY,
    "ema=true",
    "callbacks.ema.decay=0.8",
    "callbacks.ema.update_starting_at_step=3",
    "regularization.dropout=0.3",
    "augment=keras",
    "trainer.max_epochs=3",
]


def test_ema_stop_resume_is_bitwise_and_eval_uses_the_average(tmp_path: Path) -> None:
    straight, part = tmp_path / "straight", tmp_path / "part"
    train(compose_cfg(straight, EMA_RUN))  # uninterrupted, in-process; the stopped run goes through train.py
    stopped = run_script("train.py", *EMA_RUN, *_signal(13), f"hydra.run.dir={part}")  # mid epoch 1
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    resumed = run_script("train.py", f"resume={part}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    a, b = run_checkpoint(straight), run_checkpoint(part)
    for section in ("state_dict", "current_model_state", "averaging_state"):
        assert a[section].keys() == b[section].keys(), section
        for key in a[section]:
            assert torch.equal(a[section][key], b[section][key]), (section, key)
    assert int(a["averaging_state"]["n_averaged"]) == 3 * 8 - 3  # steps 3..23 (0-based) averaged
    with pytest.raises(CheckpointError, match=r"ema changed from true to false; a resumed run keeps its weight averaging"):
        check_inputs(compose_cfg(tmp_path / "toggled", [*EMA_RUN, "ema=false", f"resume={part}"]))
    recorded, again = _metrics(straight), _metrics(part)  # as written by train()
    for key in ("val/acc_best", "val/acc", "test/acc", "test/loss", "epochs"):
        assert recorded[key] == again[key], key

    # The checkpoint's weights are the average, not the live network; batch-norm statistics included.
    live, average = a["current_model_state"], a["state_dict"]
    bn = next(k for k in average if k.endswith("running_mean"))
    assert not torch.equal(live[bn], average[bn]) and not torch.equal(live["net.classifier.weight"], average["net.classifier.weight"])
    assert torch.equal(average["val_acc_best"], live["val_acc_best"])  # bookkeeping is the live module's

    # Validation judged the average: the best checkpoint's weights give exactly the logged val/acc of its epoch.
    best = run_checkpoint(straight, Path(recorded["best_ckpt"]).name)
    logged = {int(r["epoch"]): float(r["val/acc"]) for r in csv.DictReader((straight / "csv" / "metrics.csv").open()) if r["val/acc"]}
    assert _evaluate(_module(best), run_config_of(best), "validate")["val/acc"] == logged[best["epoch"]]
    assert recorded["val/acc_best"] == max(logged.values())

    # The test after fitting and eval.py evaluate the averaged weights; the live ones score differently.
    eval_metrics = evaluate(compose_cfg(tmp_path / "eval", [f"ckpt_path={straight}"], "eval"))  # eval.py's pipeline
    assert (eval_metrics["test/acc"], eval_metrics["test/loss"]) == (recorded["test/acc"], recorded["test/loss"])
    live_test = _evaluate(_module(best, "current_model_state"), run_config_of(best))
    assert live_test["test/loss"] != recorded["test/loss"]


def test_ema_decay_warms_up_to_its_setting() -> None:
    update = warmup_ema_avg_fn(0.99)
    average, weights = torch.zeros(3), torch.ones(3)
    for n, rate in ((1, 2 / 11), (10, 11 / 20), (100, 101 / 110), (1000, 0.99)):  # min(decay, (1 + n) / (10 + n))
        torch.testing.assert_close(update(average, weights, torch.tensor(n)), torch.full((3,), 1 - rate))
    counts = torch.tensor([10, 20])
    torch.testing.assert_close(update(counts, counts + 100, torch.tensor(5)), torch.tensor([11.0, 21.0]))  # integer buffers: fixed decay


def test_ema_on_without_its_callback_is_a_config_error() -> None:
    message = config_error("ema=true", "callbacks.ema=null")
    assert message.startswith("ema=true callbacks.ema=null:") and "ema=false" in message
    assert "callbacks.ema.decay=1.0" in config_error("ema=true", "callbacks.ema.decay=1.0")


# ------------------------------------------------------------------------------------------------- TTA


def test_tta_logits_arithmetic() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 2, 6, 5)
    weight = torch.randn(2 * 6 * 5, 4)
    seen: list[torch.Tensor] = []

    def forward(batch: torch.Tensor) -> torch.Tensor:
        seen.append(batch)
        return batch.flatten(1) @ weight

    assert torch.equal(tta_logits(forward, x, "none"), x.flatten(1) @ weight) and len(seen) == 1 and seen[0] is x
    torch.testing.assert_close(tta_logits(forward, x, "flip"), 0.5 * (forward(x) + forward(x[..., torch.arange(4, -1, -1)])))

    def mirrored(batch: torch.Tensor) -> torch.Tensor:
        return 0.5 * (forward(batch) + forward(batch.flip(-1)))

    # One-pixel shifts with reflection at the border, by index: up-left reads rows/cols [1, 0, 1, ..., n-2],
    # down-right [1, 2, ..., n-1, n-2].
    def shifted(n: int, up_left: bool) -> torch.Tensor:
        return torch.tensor([1, *range(n - 1)]) if up_left else torch.tensor([*range(1, n), n - 2])

    copies = [x[:, :, shifted(6, ul)][..., shifted(5, ul)] for ul in (True, False)]
    expected = 0.5 * mirrored(x) + 0.25 * (mirrored(copies[0]) + mirrored(copies[1]))
    torch.testing.assert_close(tta_logits(forward, x, "flip_translate"), expected)
    with pytest.raises(ValueError, match="flip_translate"):
        tta_logits(forward, x, "rotate")


def test_tta_none_is_todays_path_and_flip_never_touches_training(tmp_path: Path) -> None:
    none, flip = tmp_path / "none", tmp_path / "flip"
    plain = train(compose_cfg(none, [*TINY, *SMALL, "tta=none"]))
    mirrored = train(compose_cfg(flip, [*TINY, *SMALL, "tta=flip"]))
    # Training is the same: identical final weights (validation under flip only judges them differently).
    a, b = run_state(none), run_state(flip)
    assert all(torch.equal(a[k], b[k]) for k in a if k != "val_acc_best")
    assert plain["val/acc_best"] != mirrored["val/acc_best"] or plain["test/loss"] != mirrored["test/loss"]

    # tta=none: the recorded test metrics are bit-for-bit those of today's evaluation of the same checkpoint.
    best = run_checkpoint(none, Path(plain["best_ckpt"]).name)
    today = module_from_config(run_config_of(best))
    today._eval_step = today._step  # the evaluation step before ``tta`` existed: one plain forward
    today.load_state_dict(best["state_dict"])
    reference = _evaluate(today, run_config_of(best))
    assert {k: plain[k] for k in reference} == reference

    # eval.py uses the run's stored tta unless the command sets one.
    stored = evaluate(compose_cfg(tmp_path / "eval", [f"ckpt_path={flip}"], "eval"))
    assert (stored["test/acc"], stored["test/loss"]) == (mirrored["test/acc"], mirrored["test/loss"])
    told = evaluate(compose_cfg(tmp_path / "eval_none", [f"ckpt_path={flip}", "tta=none"], "eval"))
    assert told["test/loss"] != mirrored["test/loss"]


def test_val_tta_sets_validation_apart_from_the_test(tmp_path: Path) -> None:
    """``tta=flip val_tta=none``: validation (and so the checkpoint choice) as with tta=none, the test as with flip."""
    plain = train(compose_cfg(tmp_path / "none", [*TINY, *SMALL, "tta=none"]))
    split = train(compose_cfg(tmp_path / "split", [*TINY, *SMALL, "tta=flip", "val_tta=none"]))
    assert (split["val/acc_best"], split["val/acc"], split["best_ckpt"]) == (plain["val/acc_best"], plain["val/acc"], plain["best_ckpt"])
    flipped = evaluate(compose_cfg(tmp_path / "eval_flip", [f"ckpt_path={tmp_path / 'split'}", "tta=flip"], "eval"))
    assert (split["test/acc"], split["test/loss"]) == (flipped["test/acc"], flipped["test/loss"]) != (plain["test/acc"], plain["test/loss"])
    assert config_error("val_tta=mirror").startswith("val_tta='mirror': not supported")


def test_tta_unknown_mode_is_a_config_error() -> None:
    message = config_error("tta=mirror")
    assert message.startswith("tta='mirror': not supported") and "flip_translate" in message
