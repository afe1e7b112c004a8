"""Config: defaults < YAML < --set, typed checks, the resolved file round trip."""

import re
from pathlib import Path

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
        (["training.learning_rate=.nan"], r"training.learning_rate expects a finite number, "
                                          r"got nan"),
        (["training.clip_norm=.inf"], r"training.clip_norm expects a finite number or null, "
                                      r"got inf"),
        (["decoding.temperature=-.inf"], r"decoding.temperature expects a finite number"),
        (["training.time_budget_minutes=.nan"], r"expects a finite number or null, got nan"),
        (["training.steps=.inf"], r"training.steps expects an integer, got inf"),
        (["data.batch_size=2.5"], r"data.batch_size expects an integer or null, got 2.5"),
        (["model.norm_first=yes please"], r"model.norm_first expects true or false"),
        (["decoding.strategy=3"], r"decoding.strategy='3'; expected one of beam, greedy"),
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


def test_every_packaged_recipe_loads_by_name_and_by_path():
    from seq2seq import recipes

    assert recipes.names() == ["finetune_opus_mt", "pretrain", "summarization", "translation",
                               "translation_base", "tuning"]
    tasks = {"summarization": "summarization", "translation": "translation",
             "translation_base": "translation", "tuning": "translation",
             "finetune_opus_mt": "translation", "pretrain": "denoising"}
    for name in recipes.names():
        by_name = config_lib.load(name)
        assert by_name.data.task == tasks[name]
        assert by_name == config_lib.load(recipes.path(name))
        assert recipes.path(name).parent == Path(recipes.__file__).parent
    assert config_lib.load("tuning").tuning.max_trials > 1


def test_a_file_of_a_recipe_name_is_read_as_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "translation").write_text("model:\n  hidden_dim: 48\n")
    assert config_lib.load("translation").model.hidden_dim == 48


def test_an_unknown_name_is_refused_with_the_recipes_there_are():
    with pytest.raises(FileNotFoundError, match=re.escape(
            "Config file translaton does not exist, and it is not a recipe's name; expected a "
            "YAML file or one of finetune_opus_mt, pretrain, summarization, translation, "
            "translation_base, tuning")):
        config_lib.load("translaton")


def test_the_repository_recipes_are_wrappers_over_the_packaged_configs_only():
    # One source of truth: recipes/ holds no config of its own, and every wrapper names a
    # packaged recipe, which every packaged recipe but translation_base has (the two chains,
    # backtranslation and pretrain_finetune, name the one they start with).
    from seq2seq import recipes

    root = Path(__file__).parents[2] / "recipes"
    assert not [p for p in root.rglob("*") if p.suffix in (".yaml", ".yml", ".json")]
    wrapped = {}
    for script in sorted(root.rglob("*.py")):
        (name,) = re.findall(r'^RECIPE = "(\w+)"$', script.read_text(), re.M)
        wrapped[script.relative_to(root).as_posix()] = name
    assert wrapped == {"finetune_opus_mt/train.py": "finetune_opus_mt",
                       "backtranslation/train.py": "translation",
                       "pretrain_finetune/train.py": "pretrain",
                       "summarization/train.py": "summarization",
                       "translation/train.py": "translation", "tuning/tune.py": "tuning"}
    assert set(wrapped.values()) == set(recipes.names()) - {"translation_base"}


def test_integral_numbers_are_taken_for_integer_fields():
    config = config_lib.load(None, ["training.steps=2e3", "data.batch_size=32.0"])
    assert (config.training.steps, config.data.batch_size) == (2000, 32)
    assert isinstance(config.training.steps, int)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["training.average_checkpoints=4"], "training.average_checkpoints=4 but only "
         "training.keep_checkpoints=3 are kept; expected training.average_checkpoints <= "
         "training.keep_checkpoints."),
        (["data.task=summarization", "data.dataset=debian-descriptions",
          "data.split_sentences=true"], "data.split_sentences=true with "
         "data.task='summarization'"),
        (["training.time_budget_minutes=5", "training.strategy=multi_worker"],
         "workers must stop at the same step; expected training.time_budget_minutes=null"),
        (["training.gradient_accumulation_steps=2", "training.strategy=mirrored"],
         "training.gradient_accumulation_steps=2 with training.strategy='mirrored': Keras' "
         "gradient accumulation runs on one device only"),
        (["data.max_source_length=200"], "data.max_source_length=200; expected at most "
         "model.max_length=128."),
        (["decoding.max_length=129"], "decoding.max_length=129; expected at most "
         "model.max_length=128."),
        (["data.batch_tokens=100"], "data.batch_tokens=100 cannot hold one sequence of "
         "model.max_length + 1 = 129 tokens"),
        (["data.batch_tokens=null"], "data.batch_tokens and data.batch_size are both null"),
        (["data.joint_vocabulary=false"], "model.share_embeddings=true needs one vocabulary"),
        (["data.tokenizer=wordpiece", "data.subword_alpha=0.1"], "data.subword_alpha=0.1 with "
         "data.tokenizer='wordpiece': sampled segmentations are SentencePiece's"),
        (["data.source_prefix=>>deu<<", "data.noise_drop=0.1"], "data.noise_drop=0.1 with "
         "data.source_prefix='>>deu<<': source noise would move the prefix"),
    ],
)
def test_rules_between_fields_are_checked_at_load(overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        config_lib.load(None, overrides)


def test_training_without_data_is_refused_before_anything_is_written(tmp_path):
    # A config without data loads (an imported run has none); training it is refused.
    from seq2seq.training import trainer

    config = config_lib.load(None, ["data.dataset=null"])
    with pytest.raises(ValueError, match=re.escape("data.dataset=null and no data.train_file")):
        trainer.train(config, tmp_path / "run", print_fn=lambda *_: None)
    assert not (tmp_path / "run").exists()


def test_a_tuning_objective_must_be_a_metric_of_the_task():
    config = config_lib.load(None, ["tuning.objective=rouge2"])
    with pytest.raises(ValueError, match=r"tuning.objective='rouge2' is not a metric of "
                                         r"data.task='translation'; expected one of bleu, chrf"):
        config_lib.check_objective(config)
    config_lib.check_objective(config_lib.load("summarization"))


def test_every_registry_dispatches_on_exactly_the_names_the_config_allows():
    import keras

    from seq2seq import datasets, decoding, export, models
    from seq2seq.data import readers
    from seq2seq.export.saved_model import QUANTIZATION_MODES
    from seq2seq.layers.position_embedding import POSITION_EMBEDDINGS
    from seq2seq.text import tokenizer
    from seq2seq.training import distribution, inputs, precision, schedules, trainer
    from seq2seq.tuning import search

    registries = {
        "model.size": models.SIZES,
        "model.position_embedding": POSITION_EMBEDDINGS,
        "data.task": inputs.TASKS,
        "data.dataset": datasets.BUILDERS,
        "data.on_error": readers.ON_ERROR,
        "data.tokenizer": tokenizer.KINDS,
        "data.sentencepiece_model_type": tokenizer.SENTENCEPIECE_MODEL_TYPES,
        "training.optimizer": trainer.OPTIMIZERS,
        "training.schedule": schedules.SCHEDULES,
        "training.precision": (*precision.POLICIES, "auto"),
        "training.strategy": distribution.STRATEGIES,
        "decoding.strategy": decoding.STRATEGIES,
        "export.quantize": QUANTIZATION_MODES,
        "export.format": export.FORMATS,
        "tuning.tuner": search.TUNERS,
        "tuning.objective": {m for ms in config_lib.TASK_METRICS.values() for m in ms},
    }
    for key, registry in registries.items():
        assert set(registry) == set(config_lib.CHOICES[key]), key
    for name in config_lib.CHOICES["model.activation"]:
        assert callable(keras.activations.get(name))


def test_resuming_keeps_max_length_only_where_positions_are_learned(tmp_path):
    from seq2seq.run_directory import check_same_model

    learned = config_lib.load(None, ["model.position_embedding=learned"])
    longer = config_lib.apply_overrides(learned, ["model.max_length=256"])
    with pytest.raises(ValueError, match=r"run holds a model trained with model.max_length=128; "
                                         r"this config has model.max_length=256"):
        check_same_model(learned, longer, tmp_path / "run")
    sinusoidal = config_lib.load(None)
    check_same_model(sinusoidal, config_lib.apply_overrides(sinusoidal, ["model.max_length=256"]),
                     tmp_path / "run")
