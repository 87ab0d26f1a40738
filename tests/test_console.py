"""Issue 23 item 4, a quiet console: what ``train.py debug=smoke`` and ``eval.py`` print, and where the rest goes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from resattn.artifacts.results import format_seconds
from tests.conftest import run_script

EPOCHS = 4
ONE_SCREEN = 40  # lines
PROGRESS = re.compile(r"Sanity Checking|Epoch 0:")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    run = tmp_path_factory.mktemp("console") / "run"
    proc = run_script("train.py", "debug=smoke", f"trainer.max_epochs={EPOCHS}", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run, proc


def test_smoke_run_prints_one_screen_before_the_progress_bar(smoke) -> None:
    run, proc = smoke
    lines = proc.stdout.splitlines()
    first_bar = next(i for i, line in enumerate(lines) if PROGRESS.search(line))
    head = lines[:first_bar]
    assert len(head) <= ONE_SCREEN, "\n".join(head)
    assert head[0] == f"run: {run}"
    for start in ("scale: ", "data: ", "model: ", "  stage 1 ", "  layer table in train.log"):
        assert any(line.startswith(start) for line in head), start
    assert not any("Layer" in line or "Tip" in line for line in head), "\n".join(head)
    assert any(line.startswith("plan: ") for line in lines)  # once the first steps are timed


def test_layer_table_goes_to_the_log_file_and_known_noise_nowhere(smoke) -> None:
    run, proc = smoke
    log = (run / "train.log").read_text()
    assert re.search(r"^Layer +Type +Output shape +Param #$", log, re.M) and "Total params: " in log
    assert "Layer " not in proc.stdout
    for noise in ("LeafSpec", "smaller than the logging interval", "💡 Tip"):
        assert noise not in proc.stdout + proc.stderr, noise


def test_epoch_lines_when_stdout_is_not_a_terminal(smoke) -> None:
    run, proc = smoke
    line = re.compile(r"^epoch (\d+)/4: train/loss \d\.\d{4}, val/loss \d\.\d{4}, val/acc \d\.\d{4}, best val/acc \d\.\d{4}; \d+ s$")
    epochs = [int(m[1]) for m in map(line.match, proc.stdout.splitlines()) if m]
    assert epochs == list(range(1, EPOCHS + 1)), proc.stdout[-3000:]
    assert len(re.findall(r"\] - epoch \d+/4: ", (run / "train.log").read_text())) == EPOCHS


def test_results_table_names_the_run_dir_whole_and_rounds_times(smoke) -> None:
    run, proc = smoke
    lines = proc.stdout.splitlines()
    assert f"results: {run}" in lines
    assert any(re.fullmatch(r"│ train_time_s +│ +\d+ s │", line) for line in lines), proc.stdout[-2000:]


def test_eval_prints_the_whole_checkpoint_path_and_where_it_wrote(smoke, tmp_path: Path) -> None:
    run, _ = smoke
    out = tmp_path / "eval"
    proc = run_script("eval.py", f"ckpt_path={run}", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    ckpt = next(run.glob("checkpoints/epoch_*.ckpt"))
    assert f"evaluation: {ckpt}" in lines
    assert f"wrote to {out}: metrics.json, predictions.csv, confusion_matrix.png" in lines
    assert all((out / name).is_file() for name in ("metrics.json", "predictions.csv", "confusion_matrix.png"))


@pytest.mark.parametrize("seconds, text", [(0.4, "0 s"), (59.6, "1 min 00 s"), (136.02, "2 min 16 s"), (3725, "1 h 02 min")])
def test_times_are_rounded_to_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


def test_model_summary_full_prints_the_layer_table_too(tmp_path: Path) -> None:
    proc = run_script("train.py", "debug=smoke", "model_summary=full", "trainer.fast_dev_run=1", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"^Layer +Type +Output shape +Param #$", proc.stdout, re.M) and "  stage 1 " in proc.stdout
    assert "layer table in" not in proc.stdout
