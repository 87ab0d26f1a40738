"""Issue 12: every config group is typed by its schema, and the one validator reads the schemas' rules."""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf

from resattn.config.compose import CONF_DIR, compose
from resattn.errors import ConfigError
from resattn.models.network import build_model
from resattn.schema.rules import RULE
from resattn.validation import check_config, check_data
from tests.helpers import config_error

TYPED_GROUPS = ("data", "augment", "model", "regularization", "optimizer", "scheduler", "trainer", "callbacks", "scale")


@pytest.mark.parametrize("group", TYPED_GROUPS)
def test_every_option_of_a_group_is_typed_by_a_schema(group):
    """A YAML file that forgets its schema would silently lose type checks: each option composes to a dataclass."""
    for option in sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")):
        node = compose("train", [f"{group}={option}"])[group]
        schema = OmegaConf.get_type(node)
        assert dataclasses.is_dataclass(schema), f"{group}={option} composes untyped ({schema})"


def test_primary_configs_are_typed():
    assert OmegaConf.get_type(compose("train")).__name__ == "TrainConfig"
    assert OmegaConf.get_type(compose("eval")).__name__ == "EvalConfig"


def test_every_experiment_composes_and_validates_its_values():
    for experiment in sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")):
        cfg = compose("train", [f"experiment={experiment}", "data=synthetic"])
        check_config(cfg)  # types at composition, rules here


def test_rules_sit_on_fields_and_one_walk_reads_them_all():
    """The schema is the single source: changing a field's rule changes what the validator accepts."""
    from resattn.schema.data import DataConfig

    field = {f.name: f for f in dataclasses.fields(DataConfig)}["batch_size"]
    assert field.metadata[RULE].describe() == "an integer >= 1"
    assert config_error("data.batch_size=0") == "data.batch_size=0: out of range; expected an integer >= 1"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.batch_size=abc", "data.batch_size='abc': wrong type (str); expected an integer >= 1"),
        ("optimizer.betas=[a,0.9]", "optimizer.betas[0]='a': wrong type (str); expected a number"),
        ("data.download=maybe", "data.download='maybe': wrong type (str); expected true or false"),
        ("trainer.max_epochs=null", "trainer.max_epochs=None: missing value; expected an integer >= 1"),
        ("optimizer.momentum=0.9", "Could not override 'optimizer.momentum': no key momentum in optimizer; allowed: lr"),
    ],
)
def test_composition_refuses_wrong_types_and_keys_in_one_line(override, message):
    with pytest.raises(ConfigError) as info:
        compose("train", [override])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_plus_still_adds_keys_a_schema_does_not_list():
    cfg = compose("train", ["+trainer.profiler=simple", "+callbacks.extra._target_=pytorch_lightning.callbacks.Timer"])
    assert cfg.trainer.profiler == "simple" and cfg.callbacks.extra._target_.endswith("Timer")


def test_stored_plain_data_config_is_checked_against_the_schema():
    """eval.py checks a checkpoint's (plain, untyped) data config with the same schema and messages."""
    stored = OmegaConf.create(
        {"data": {**OmegaConf.to_container(compose("train", ["debug=smoke"]).data, resolve=True), "batch_size": "abc"}}
    )
    with pytest.raises(ConfigError, match=r"data.batch_size='abc': wrong type \(str\)"):
        check_data(stored)
    stored.data.batch_size = 0
    with pytest.raises(ConfigError, match="data.batch_size=0: out of range"):
        check_data(stored)


def test_layouts_without_null_keys_build_the_same_network():
    """Checkpoints written before the typed layout store entries without null keys; they build the same net."""
    cfg = compose("train", ["model.width=4"])
    model = OmegaConf.to_container(cfg.model, resolve=True)
    sparse = [{k: v for k, v in block.items() if v is not None} for block in model["layout"]]
    assert any(len(block) < 6 for block in sparse)
    typed_net, sparse_net = build_model(cfg), build_model({"model": {**model, "layout": sparse}})
    assert {k: v.shape for k, v in typed_net.state_dict().items()} == {k: v.shape for k, v in sparse_net.state_dict().items()}
