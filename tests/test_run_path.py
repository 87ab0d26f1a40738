"""Issue 19: one ``train.py`` run composes its config once and checks each rule once, before Hydra writes anything."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import TINY, run_script

# Runs train.py's entry point with counters on Hydra's composition and on the config checks.
COUNTING = """
import atexit, json, os, sys
from hydra._internal.hydra import Hydra
import resattn.validation as validation
counts = {"compose": 0, "check_config": 0}
def counted(name, fn):
    def wrapper(*args, **kwargs):
        counts[name] += 1
        return fn(*args, **kwargs)
    return wrapper
Hydra.compose_config = counted("compose", Hydra.compose_config)
validation.check_config = counted("check_config", validation.check_config)
atexit.register(lambda: open(os.environ["COUNTS"], "w").write(json.dumps(counts)))
sys.argv[0] = "train.py"
from resattn.cli.app import train_main
train_main()
"""


def _counted_run(tmp_path: Path, *args: str) -> dict[str, int]:
    counts = tmp_path / "counts.json"
    result = run_script("-c", COUNTING, *args, env={"COUNTS": str(counts)})
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(counts.read_text())


def test_one_run_composes_once_and_checks_once(tmp_path: Path) -> None:
    run = tmp_path / "run"
    counts = _counted_run(tmp_path, *TINY, "trainer.max_epochs=1", "test=false", f"hydra.run.dir={run}")
    assert counts == {"compose": 1, "check_config": 1}, counts
    assert (run / "metrics.json").is_file()
    resumed = _counted_run(tmp_path, f"resume={run}")  # a resumed run: the same, with the saved overrides replayed
    assert resumed == {"compose": 1, "check_config": 1}, resumed
