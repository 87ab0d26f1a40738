"""Comparing experiments (issue 10): a multirun over ``experiment`` and ``python -m resattn.report`` over
separate runs give the same table, labelled by experiment; ``--publish`` writes a results folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import TINY, run_script

# scale=cpu shrinks both experiments to 2 epochs of the generated data set.
COMMON = [*[a for a in TINY if not a.startswith("trainer.max_epochs")], "scale=cpu", "scale.max_epochs=2", "scale.width=4", "test=true"]
EXPERIMENTS = ("original_sgd_base", "original_adam_base")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def experiments_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sweep_dir = tmp_path_factory.mktemp("experiments") / "sweep"
    proc = run_script("train.py", "-m", f"experiment={','.join(EXPERIMENTS)}", *COMMON, f"hydra.sweep.dir={sweep_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert all(e in proc.stdout for e in EXPERIMENTS)  # the printed table names the experiments
    return sweep_dir


def test_multirun_over_experiments_labels_rows_by_experiment(experiments_sweep: Path) -> None:
    rows = _rows(experiments_sweep / "summary.csv")
    assert [r["experiment"] for r in rows] == list(EXPERIMENTS)
    for row in rows:
        metrics = json.loads((Path(row["dir"]) / "metrics.json").read_text())
        assert (metrics["task"], metrics["scale"], metrics["epochs"]) == (row["experiment"], "cpu", 2)
        assert float(row["test/acc"]) == metrics["test/acc"]
    assert "![validation curves](val_curves.png)" in (experiments_sweep / "summary.md").read_text()


def test_report_over_separate_runs_matches_the_sweep_and_publishes(experiments_sweep: Path, tmp_path: Path) -> None:
    job_dirs = [experiments_sweep / "0", experiments_sweep / "1"]
    out = tmp_path / "results"
    proc = run_script("-m", "resattn.report", *map(str, job_dirs), "--out", str(out), "--publish")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ours, sweep = _rows(out / "summary.csv"), _rows(experiments_sweep / "summary.csv")
    columns = ("experiment", "val/acc_best", "test/acc", "test/loss", "epochs", "train_time_s")
    assert [[r[c] for c in columns] for r in ours] == [[r[c] for c in columns] for r in sweep]
    with Image.open(out / "val_curves.png") as picture:
        assert picture.size[0] > 500
    readme = (out / "README.md").read_text()
    for experiment, job_dir in zip(EXPERIMENTS, job_dirs):
        folder = out / experiment
        assert json.loads((folder / "metrics.json").read_text()) == json.loads((job_dir / "metrics.json").read_text())
        assert (folder / "curves.png").is_file() and not list(folder.glob("*.ckpt"))
        assert f"python train.py experiment={experiment} " in readme  # the command, without output locations
    assert "hydra.sweep.dir" not in readme and "## Machine" in readme and "cores" in readme


def test_report_rejects_a_folder_that_is_not_a_run(tmp_path: Path, experiments_sweep: Path) -> None:
    proc = run_script("-m", "resattn.report", str(experiments_sweep / "0"), str(tmp_path))
    assert proc.returncode == 2 and "not a train.py run directory" in proc.stderr


def _finished_run(
    run_dir: Path, overrides: list[str], test_acc: float, train_time_s: float = 1511.76, epochs: int = 24, **recorded: str
) -> Path:
    """A run directory as train.py leaves it, as far as the report reads it (no training)."""
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in [*overrides, f"hydra.run.dir={run_dir}"]))
    (run_dir / ".hydra" / "config.yaml").write_text("task_name: improved\nseed: 42\nmodel:\n  attention: arl\n")
    metrics = {"status": "ok", "task": "improved", "val/acc_best": test_acc, "test/acc": test_acc}
    metrics.update({"train_time_s": train_time_s, "epochs": epochs, **recorded})
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return run_dir


def test_published_labels_name_only_what_differs(tmp_path: Path) -> None:
    runs = [
        _finished_run(tmp_path / "a", ["experiment=improved"], 0.832),
        _finished_run(tmp_path / "b", ["experiment=improved", "seed=1"], 0.830),
        # continued after an interruption: resume=<its own dir> is not what it ran
        _finished_run(
            tmp_path / "c",
            ["experiment=improved", "model.attention=nal", f"resume={tmp_path / 'c'}"],
            0.824,
            device="Zen 4",
            precision="bf16-mixed",
        ),
    ]
    out = tmp_path / "results"
    proc = run_script("-m", "resattn.report", *map(str, runs), "--out", str(out), "--publish", "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["improved", "improved_model.attention_nal", "improved_seed_1"]
    readme = (out / "README.md").read_text()
    assert "[improved_seed_1](improved_seed_1/)" in readme and "seed_42" not in readme and "resume" not in readme
    assert "compared by: `experiment`, `seed`, `model.attention`." in readme
    assert "python train.py experiment=improved model.attention=nal\n" in readme
    assert "± 0.0000" not in readme and "25 min 12 s" in readme  # one run per configuration: no spread; times in seconds
    # what each run trained on, from its metrics.json, apart from the machine that published them
    assert "- Zen 4; precision bf16-mixed: improved_model.attention_nal\n" in readme
    assert "- not recorded (metrics.json written before resattn recorded `device` and `precision`): improved, improved_seed_1\n" in readme
    assert "Published on: " in readme
    with Image.open(out / "summary.png") as picture:
        assert picture.size[0] > picture.size[1]
    # every run set the key: each names its value (the NAL run is not published as plain "improved")
    both = [_finished_run(tmp_path / name, ["experiment=improved", f"model.attention={name}"], 0.88) for name in ("nal", "none")]
    proc = run_script("-m", "resattn.report", *map(str, both), "--out", str(tmp_path / "ablation"), "--publish", "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "ablation").iterdir() if p.is_dir()) == [
        "improved_model.attention_nal",
        "improved_model.attention_none",
    ]


def test_time_to_accuracy_picture_of_budgets_with_a_reference_point(tmp_path: Path) -> None:
    zen3, zen4 = {"device": "Zen 3", "precision": "32-true"}, {"device": "Zen 4", "precision": "bf16-mixed"}
    runs = [
        _finished_run(tmp_path / f"e{epochs}", ["experiment=improved", f"trainer.max_epochs={epochs}"], acc, 60.0 * epochs, epochs, **on)
        for epochs, acc, on in ((16, 0.85, zen3), (8, 0.80, zen3), (26, 0.88, zen4))
    ]
    out = tmp_path / "budgets"
    reference = "original 56mini-Adam-Base, P100:76.8:0.7854"
    args = ["-m", "resattn.report", *map(str, runs), "--out", str(out), "--quiet", "--time-to-accuracy"]
    proc = run_script(*args, "--reference", reference)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = (out / "summary.md").read_text()
    assert "![test/acc against training time](time_to_accuracy.png)" in summary
    # one line per configuration and machine, in order of time: training times of two machines are never joined
    assert "- improved (Zen 3; precision 32-true): 8 ep 0.8000 in 8 min 00 s, 16 ep 0.8500 in 16 min 00 s\n" in summary
    assert "- improved (Zen 4; precision bf16-mixed): 26 ep 0.8800 in 26 min 00 s\n" in summary
    with Image.open(out / "time_to_accuracy.png") as picture:
        assert picture.size[0] > picture.size[1] > 400
    bad = run_script(*args, "--reference", "P100:76.8")
    assert bad.returncode == 2 and "expected LABEL:MINUTES:ACCURACY" in bad.stderr
    alone = run_script("-m", "resattn.report", *map(str, runs), "--out", str(out), "--reference", reference)
    assert alone.returncode == 2 and "add --time-to-accuracy" in alone.stderr
