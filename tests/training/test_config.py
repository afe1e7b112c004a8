"""Config: defaults < YAML < --set, typed checks, the resolved file round trip."""

import pytest
import yaml

from seq2seq import config as config_lib


def write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_precedence_cli_over_yaml_over_defaults(tmp_path):
    path = write(tmp_path, "training:\n  steps: 500\n  learning_rate: 0.002\nmodel:\n  size: tiny\n")
    config = config_lib.load(path, ["training.steps=2000", "data.batch_tokens=1024",
                                    "training.weight_decay=1e-4"])
    assert config.training.weight_decay == 1e-4  # YAML reads 1e-4 as a string; still a number
    assert config.training.steps == 2000  # CLI beats YAML
    assert config.training.learning_rate == 0.002  # YAML beats default
    assert config.model.size == "tiny"
    assert config.data.batch_tokens == 1024
    assert config.training.warmup_steps == config_lib.TrainingConfig().warmup_steps  # default


def test_resolved_config_round_trips(tmp_path):
    config = config_lib.load(None, ["model.size=base", "training.clip_norm=null",
                                    "data.dataset_config=en-de"])
    config_lib.save(config, tmp_path / "run" / "config.yaml")
    assert config_lib.load(tmp_path / "run" / "config.yaml") == config
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["model"]["size"] == "base"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["training.steps=many"], r"training.steps expects an integer, got 'many'"),
        (["training.steps=1.5"], r"training.steps expects an integer, got 1.5"),
        (["training.jit_compile=3"], r"training.jit_compile expects true or false"),
        (["training.stepz=3"], r"no field 'training.stepz' in the config"),
        (["steps=3"], r"expected section.field=value"),
        (["decoding.max_length=long"], r"decoding.max_length expects an integer or null, got 'long'"),
        (["training.time_budget_minutes=true"],
         r"training.time_budget_minutes expects a finite number or null, got True"),
    ],
)
def test_bad_overrides_say_what_was_expected(overrides, message):
    with pytest.raises(ValueError, match=message):
        config_lib.load(None, overrides)


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.dropout=1.0", "model.dropout=1.0; expected 0 <= model.dropout < 1."),
        ("model.attention_dropout=-0.1", "expected 0 <= model.attention_dropout < 1."),
        ("model.num_heads=0", "model.num_heads=0; expected model.num_heads >= 1."),
        ("model.max_length=1", "model.max_length=1; expected model.max_length >= 2."),
        ("data.batch_tokens=-5", "data.batch_tokens=-5; expected data.batch_tokens >= 1."),
        ("training.steps=0", "training.steps=0; expected training.steps >= 1."),
        ("training.time_budget_minutes=0", "expected training.time_budget_minutes > 0."),
        ("training.decay_fraction=0", "expected 0 < training.decay_fraction <= 1."),
        ("training.decay_fraction=1.5", "expected 0 < training.decay_fraction <= 1."),
        ("training.label_smoothing=1", "expected 0 <= training.label_smoothing < 1."),
        ("training.learning_rate=0", "expected training.learning_rate > 0."),
        ("decoding.beam_size=0", "decoding.beam_size=0; expected decoding.beam_size >= 1."),
        ("decoding.batch_size=0", "expected decoding.batch_size >= 1."),
        ("tuning.max_trials=0", "expected tuning.max_trials >= 1."),
        ("decoding.n_best=5", "decoding.n_best=5; expected decoding.n_best <= "
                              "decoding.beam_size=4."),
    ],
)
def test_values_out_of_range_name_the_field_and_its_range(override, message):
    with pytest.raises(ValueError) as error:
        config_lib.load(None, [override])
    assert str(error.value).startswith(f"--set: {override.split('=')[0]}=")
    assert str(error.value).endswith(message)


def test_range_ends_and_null_are_accepted_and_a_yaml_file_is_named(tmp_path):
    config = config_lib.load(None, ["model.dropout=0", "training.decay_fraction=1",
                                    "training.warmup_steps=0", "decoding.examples=0",
                                    "training.clip_norm=null", "model.max_length=2"])
    assert (config.model.dropout, config.training.decay_fraction) == (0.0, 1.0)
    assert config.training.clip_norm is None
    with pytest.raises(ValueError, match=r"config.yaml: training.eval_every=0; expected "
                                         r"training.eval_every >= 1.$"):
        config_lib.load(write(tmp_path, "training:\n  eval_every: 0\n"))
    # A config built in Python is checked too, before a run starts.
    config.decoding.n_best = 0
    with pytest.raises(ValueError, match="decoding.n_best=0; expected decoding.n_best >= 1."):
        config_lib.check(config)


def test_bad_yaml_fields_and_sections(tmp_path):
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['layers'\] in section 'model'"):
        config_lib.load(write(tmp_path, "model:\n  layers: 3\n"))
    with pytest.raises(ValueError, match=r"unknown section\(s\) \['optim'\]"):
        config_lib.load(write(tmp_path, "optim: {}\n"))
    with pytest.raises(FileNotFoundError, match="missing.yaml does not exist"):
        config_lib.load(tmp_path / "missing.yaml")


def test_recipe_configs_load():
    for recipe in ("translation", "summarization", "translation_base"):
        from pathlib import Path

        path = Path(__file__).parents[2] / "recipes" / recipe.split("_")[0] / (
            "config.yaml" if "_" not in recipe else "config_base.yaml"
        )
        config = config_lib.load(path)
        assert config.data.task == recipe.split("_")[0]
