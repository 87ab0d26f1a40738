"""Issue 2: Keras-style model summary (``python -m resattn.model_summary``) and parameter counting."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from resattn.config.compose import compose
from resattn.model_summary import ParamCounts, count_params, main, summarize
from resattn.models.network import build_model

ROOT = Path(__file__).resolve().parent.parent
AUTHORS_ATTENTION56 = [
    "Total params: 28,366,154",
    "Trainable params: 28,326,986",
    "Non-trainable params: 39,168",
]
ROW = re.compile(r"^(\S+)\s+(\w+)\s+(\(None(?:, \d+)+\))\s+([\d,]+)$")


def _rows(text: str) -> list[tuple[str, str, str, int]]:
    rows = []
    for line in text.splitlines():
        m = ROW.match(line)
        if m:
            rows.append((m[1], m[2], m[3], int(m[4].replace(",", ""))))
    return rows


@pytest.fixture(scope="module")
def attention56_cli_output() -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "resattn.model_summary", "model=attention56", "regularization=none"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_cli_prints_the_authors_attention56_counts(attention56_cli_output):
    lines = attention56_cli_output.rstrip("\n").splitlines()
    assert lines[-3:] == AUTHORS_ATTENTION56


def test_cli_prints_a_per_layer_table(attention56_cli_output):
    text = attention56_cli_output
    header = next(line for line in text.splitlines() if line.startswith("Layer"))
    assert header.split() == ["Layer", "Type", "Output", "shape", "Param", "#"]
    rows = _rows(text)
    assert len(rows) > 200
    by_name = {name: (kind, shape, params) for name, kind, shape, params in rows}
    # stem: 5x5 conv 3 -> 32 with bias, BN (2 trainable + 2 moving per channel), ReLU, max-pool 2
    assert by_name["stem.0"] == ("KerasSameConv2d", "(None, 32, 32, 32)", 5 * 5 * 3 * 32 + 32)
    assert by_name["stem.1"] == ("BatchNorm2d", "(None, 32, 32, 32)", 4 * 32)
    assert by_name["stem.3"] == ("MaxPool2d", "(None, 32, 16, 16)", 0)
    assert by_name["classifier"] == ("Linear", "(None, 10)", 1024 * 10 + 10)
    assert by_name["head.0"] == ("AvgPool2d", "(None, 1024, 1, 1)", 0)
    assert rows[0][0] == "stem.0" and rows[-1][0] == "classifier"  # forward order
    # every parameterised layer runs in forward, so the rows add up to the total
    assert sum(r[3] for r in rows) == 28_366_154


def test_summary_main_in_process_head_bn_and_restores_state(capsys):
    assert main(["model=attention56", "regularization=original", "model.width=8"]) == 0
    out = capsys.readouterr().out.splitlines()
    base = count_params(build_model(compose("train", ["model=attention56", "regularization=none", "model.width=8"])))
    # the seed regularization adds BN(256) before the pool: 4*256 parameters, 2*256 non-trainable
    assert out[-3:] == [
        f"Total params: {base.total + 1024:,}",
        f"Trainable params: {base.trainable + 512:,}",
        f"Non-trainable params: {base.non_trainable + 512:,}",
    ]


def test_summary_cli_reports_config_errors(capsys):
    assert main(["model.width=0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "model.width=0" in err and "\n" not in err
    assert "Error in call to target" not in err  # the ConfigError itself, unwrapped from Hydra's instantiate


def test_summarize_leaves_model_untouched():
    torch.manual_seed(0)
    model = build_model(compose("train", ["model=attention56_mini", "model.width=4"]))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    text = summarize(model)
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # eval mode: BN running stats not updated
    assert text.splitlines()[-3].startswith("Total params: ")
    assert sum(r[3] for r in _rows(text)) == count_params(model).total


def test_count_params_keras_convention():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Linear(4, 2))
    assert count_params(model) == ParamCounts(total=(3 * 9 * 8 + 8) + 4 * 8 + (4 * 2 + 2), trainable=224 + 16 + 10, non_trainable=16)
    model[2].weight.requires_grad_(False)  # frozen weights are non-trainable, like Keras
    assert count_params(model) == ParamCounts(total=266, trainable=242, non_trainable=24)
    no_stats = nn.BatchNorm2d(8, track_running_stats=False)
    assert count_params(no_stats) == ParamCounts(16, 16, 0)
