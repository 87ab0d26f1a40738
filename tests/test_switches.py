"""Issue 11: the GPU-ready switches through the LightningModule and the user's commands, on CPU.

* ``compile=true`` trains, resumes, starts new runs (``ckpt_path=``) and evaluates, with checkpoint keys
  identical to an uncompiled run's, one whole graph per mode (``fullgraph``), and inductor as a real backend;
* ``trainer.precision=bf16-mixed`` / ``16-mixed``: the smoke run (at width 4) learns, ``eval.py`` reproduces the
  recorded test metrics exactly, and resume is bitwise (``tests/test_train.py``);
* ``channels_last``: the module trains and evaluates in channels_last with parity to contiguous memory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from resattn.training.build import build_datamodule, module_from_config
from resattn.training.checkpoint_files import run_config_of
from resattn.training.fit import train
from resattn.training.module import ResAttnModule
from resattn.training.speed import compile_options
from tests.conftest import RUN_THREADS, TINY, compose_cfg, run_script
from tests.helpers import run_checkpoint, run_state

# 4 training steps; every evaluation is one full batch (no second, smaller shape to compile).
SHORT = [
    *TINY,
    "trainer.max_epochs=1",
    "data.train_size=64",
    "data.val_size=32",
    "data.test_size=32",
    "data.batch_size=16",
    "data.eval_batch_size=32",
]


def _metrics(run: Path) -> dict[str, Any]:
    return json.loads((run / "metrics.json").read_text())


# ------------------------------------------------------------------------------------------------ compile


class GraphCounter:
    """A ``torch.compile`` backend that records every captured graph and runs it eagerly (same numerics)."""

    name = "resattn_test_graph_counter"

    def __init__(self) -> None:
        self.graphs: list[torch.fx.GraphModule] = []

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Callable[..., Any]:
        self.graphs.append(gm)
        return gm.forward


_COUNTER = GraphCounter()
torch._dynamo.register_backend(_COUNTER, name=GraphCounter.name)  # once per process (names are unique)


@pytest.fixture
def graph_counter() -> GraphCounter:
    torch._dynamo.reset()
    _COUNTER.graphs.clear()
    yield _COUNTER
    torch._dynamo.reset()


def test_compile_defaults_are_inductor_whole_graph(tmp_path: Path) -> None:
    cfg = OmegaConf.to_container(compose_cfg(tmp_path, [*TINY, "compile=true"]), resolve=True)
    assert compile_options(cfg) == {"backend": "inductor", "mode": None, "fullgraph": True}


def test_compile_runs_through_the_module_with_plain_checkpoint_keys(tmp_path: Path, graph_counter: GraphCounter) -> None:
    """Training, validation and test go through the compiled network, one graph per mode, same results."""
    plain = train(compose_cfg(tmp_path / "plain", SHORT))
    compiled = train(compose_cfg(tmp_path / "compiled", [*SHORT, "compile=true", f"compile_options.backend={GraphCounter.name}"]))
    # fullgraph: a graph break would have raised; training and eval mode each get their graph
    assert len(graph_counter.graphs) >= 2
    a, b = run_state(tmp_path / "plain"), run_state(tmp_path / "compiled")
    assert list(a) == list(b)  # no `_orig_mod` / wrapper keys: checkpoints interchange with uncompiled runs
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=key)
    assert compiled["test/acc"] == plain["test/acc"]
    assert compiled["test/loss"] == pytest.approx(plain["test/loss"], rel=1e-4)


def test_compile_resume_and_ckpt_path(tmp_path: Path, graph_counter: GraphCounter) -> None:
    compiled = [*SHORT, "compile=true", f"compile_options.backend={GraphCounter.name}", "regularization.dropout=0.3"]
    straight = tmp_path / "straight"
    train(compose_cfg(straight, [*compiled, "trainer.max_epochs=2"]))
    part = tmp_path / "part"
    train(compose_cfg(part, compiled))
    train(compose_cfg(part, [*compiled, f"resume={part}", "trainer.max_epochs=2"]))
    a, b = run_state(straight), run_state(part)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # ckpt_path=: a new compiled run from the compiled run's checkpoint
    new = train(compose_cfg(tmp_path / "new", [*compiled, f"ckpt_path={part / 'checkpoints' / 'last.ckpt'}"]))
    assert new["status"] == "ok" and new["epochs"] == 1


@pytest.mark.timeout(1000)  # two processes compile with inductor (about 1-2 min each on 2 idle cores)
def test_compile_true_with_inductor_trains_and_evaluates_from_the_cli(tmp_path: Path) -> None:
    """The command that crashed at its first forward, with the default (real) backend: inductor. (Resuming a
    compiled run is test_compile_resume_and_ckpt_path's, with a graph-counting backend: the same code path.)"""
    run = tmp_path / "run"
    first = run_script("train.py", *SHORT, "compile=true", f"hydra.run.dir={run}", timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    cfg = OmegaConf.to_container(compose_cfg(tmp_path / "ref", SHORT), resolve=True)
    assert list(run_state(run)) == list(module_from_config(cfg).state_dict())
    evaluated = run_script("eval.py", f"ckpt_path={run}", f"hydra.run.dir={tmp_path / 'eval'}", timeout=900)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    recorded, again = _metrics(run), _metrics(tmp_path / "eval")
    assert (again["test/acc"], again["test/loss"]) == (recorded["test/acc"], recorded["test/loss"])


def test_bad_compile_backend_is_one_clear_error(tmp_path: Path) -> None:
    proc = run_script("train.py", *SHORT, "compile=true", "compile_options.backend=inductr", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "compile_options.backend" in last and "inductor" in last
    assert "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------------------- mixed precision


@pytest.mark.parametrize(
    "precision",
    [
        "bf16-mixed",
        pytest.param(
            "16-mixed",
            marks=pytest.mark.skipif(
                not torch.cuda.is_available(), reason="on a CPU Lightning runs 16-mixed as bf16-mixed, the case above"
            ),
        ),
    ],
)
def test_smoke_run_learns_in_mixed_precision_and_eval_reproduces_it(tmp_path: Path, precision: str) -> None:
    run = tmp_path / "smoke"
    # width 4: a CPU without native bf16 emulates it, several times slower than fp32 (width 8 took 5 min on a Zen 3)
    smoke = ["debug=smoke", "model.width=4", f"trainer.precision={precision}", f"hydra.run.dir={run}"]
    trained = run_script("train.py", *smoke, env=RUN_THREADS, timeout=540)
    assert trained.returncode == 0, trained.stderr[-2000:]
    recorded = _metrics(run)
    assert recorded["test/acc"] >= 0.90, recorded
    evaluated = run_script("eval.py", f"ckpt_path={run}", f"hydra.run.dir={tmp_path / 'eval'}")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    again = _metrics(tmp_path / "eval")
    assert (again["test/acc"], again["test/loss"]) == (recorded["test/acc"], recorded["test/loss"])


# ------------------------------------------------------------------------------------------ channels_last


def _evaluate(module: ResAttnModule, cfg: Any) -> dict[str, float]:
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False
    )
    return trainer.test(module, datamodule=build_datamodule(cfg), verbose=False)[0]


def _layout_module(stored: dict[str, Any], channels_last: bool) -> ResAttnModule:
    cfg = {**run_config_of(stored), "channels_last": channels_last}
    module = module_from_config(cfg)
    module.load_state_dict(stored["state_dict"])
    module.configure_model()  # what the trainer calls: converts the weights when channels_last is on
    conv = module.net.stem[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) == channels_last
    return module


def test_channels_last_trains_and_evaluates_with_parity_through_the_module(tmp_path: Path) -> None:
    run = tmp_path / "run"
    metrics = train(compose_cfg(run, [*SHORT, "trainer.max_epochs=2", "channels_last=true"]))
    assert metrics["status"] == "ok"
    stored = run_checkpoint(run)

    # One training step in both layouts: the same loss; gradients equal up to float summation order (train-mode
    # BN over this width-4 network's 2x2 maps amplifies that to ~1e-3 relative; a layout bug is O(1)). Whole
    # runs are not compared: over several steps that noise grows chaotically in so small a network.
    datamodule = build_datamodule(OmegaConf.create(run_config_of(stored)))
    datamodule.setup("fit")
    batch = datamodule.prepare_batch(next(iter(datamodule.train_dataloader())), train=True)
    losses, grads = {}, {}
    for layout in (True, False):
        module = _layout_module(stored, layout).train()
        losses[layout] = module.training_step(batch, 0)
        losses[layout].backward()
        grads[layout] = torch.cat([p.grad.flatten() for p in module.net.parameters()])
    torch.testing.assert_close(losses[True], losses[False], rtol=1e-5, atol=1e-6)
    assert ((grads[True] - grads[False]).norm() / grads[False].norm()).item() < 1e-2

    # Evaluation of one checkpoint in both layouts: the same predictions.
    results = {layout: _evaluate(_layout_module(stored, layout), OmegaConf.create(run_config_of(stored))) for layout in (True, False)}
    assert results[True]["test/acc"] == results[False]["test/acc"]
    assert results[True]["test/loss"] == pytest.approx(results[False]["test/loss"], rel=1e-5)
