"""Hyperparameter search: tiny searches on the fixture (names contain "tun": `-k tun`)."""

import json

import keras_tuner as kt
import pytest
import yaml

from seq2seq import config as config_lib
from seq2seq.training import trainer
from seq2seq.tuning.search import TransformerHyperModel, tune
from tests.training.conftest import shrink

SPACE = {
    "model.hidden_dim": {"type": "choice", "values": [16, 32]},
    "model.num_heads": {"type": "choice", "values": [2, 4]},
    "training.learning_rate": {"type": "float", "min": 1e-4, "max": 1e-2, "sampling": "log"},
}


def tuning_config(tmp_path, **tuning):
    path = shrink("translation", tmp_path, tuning={
        "tuner": "bayesian", "max_trials": 3, "objective": "chrf", "steps_per_trial": 3,
        "space": SPACE, **tuning})
    return config_lib.load(path)


def trial_lines(lines):
    return [line for line in lines if line.startswith("trial ")]


@pytest.mark.parametrize("tuner", ["bayesian", "hyperband"])
def test_tuning_search_finds_a_best_config_that_trains(tmp_path, tuner):
    config = tuning_config(tmp_path, tuner=tuner)
    lines = []
    summary = tune(config, tmp_path / "search", print_fn=lines.append)
    assert summary["failed"] == 0
    assert summary["trials"] == len(trial_lines(lines)) >= 3
    assert "| trial | status | score | values |" in (tmp_path / "search" / "summary.md").read_text()
    logs = list((tmp_path / "search" / "logs").iterdir())
    assert len(logs) == summary["trials"]  # one hparams run per trial
    # The best configuration is a plain config that `seq2seq train` accepts as it is.
    best = config_lib.load(summary["best_config"])
    best_values = yaml.safe_load(open(summary["best_config"]))
    assert best_values["model"]["hidden_dim"] in (16, 32)
    best.training.steps, best.training.eval_every = 3, 3
    run = trainer.train(best, tmp_path / "best_run", print_fn=lambda *a: None)
    assert int(run.model.optimizer.iterations.numpy()) == 3


def test_tuning_resumes_without_redoing_finished_trials(tmp_path, monkeypatch):
    config = tuning_config(tmp_path, max_trials=3)
    real_train = trainer.train
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the second trial
        return real_train(*args, **kwargs)

    monkeypatch.setattr(trainer, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tune(config, tmp_path / "search", print_fn=lambda *a: None)
    monkeypatch.setattr(trainer, "train", real_train)

    lines = []
    summary = tune(config, tmp_path / "search", print_fn=lines.append)
    assert summary["trials"] == 3 and summary["failed"] == 0
    # Trial 0 finished before the interruption and is not run again.
    assert len(trial_lines(lines)) == 2
    assert not any(line.startswith("trial 00 ") for line in trial_lines(lines))


def test_tuning_skips_invalid_architectures(tmp_path):
    space = {"model.hidden_dim": {"type": "choice", "values": [30, 32]},
             "model.num_heads": {"type": "choice", "values": [4]}}
    config = tuning_config(tmp_path, tuner="random", max_trials=6, space=space)
    summary = tune(config, tmp_path / "search", print_fn=lambda *a: None)
    table = (tmp_path / "search" / "summary.md").read_text()
    assert summary["failed"] == 1 and "FAILED" in table
    assert json.loads(json.dumps(summary))["best_score"] is not None
    assert yaml.safe_load(open(summary["best_config"]))["model"]["hidden_dim"] == 32


def test_tuning_hypermodel_builds_from_hp():
    config = config_lib.load(None, ["model.size=tiny"])
    config.tuning.space = {"model.hidden_dim": {"type": "choice", "values": [48]},
                           "model.num_heads": {"type": "choice", "values": [4]}}
    model = TransformerHyperModel(config).build(kt.HyperParameters())
    assert model.hidden_dim == 48 and model.num_heads == 4 and model.optimizer is not None
    config.tuning.space["model.num_heads"] = {"type": "choice", "values": [5]}
    with pytest.raises(kt.errors.FailedTrialError, match="48 is not divisible by num_heads 5"):
        TransformerHyperModel(config).build(kt.HyperParameters())


def test_a_search_space_outside_a_fields_range_is_refused_before_any_trial():
    config = config_lib.load(None, ["model.size=tiny"])
    config.tuning.space = {"model.dropout": {"type": "float", "min": 0.0, "max": 1.0}}
    with pytest.raises(ValueError, match=r"tuning.space\['model.dropout'\] reaches 1.0; "
                                         r"expected 0 <= model.dropout < 1."):
        TransformerHyperModel(config).build(kt.HyperParameters())
    config.tuning.space = {"decoding.beam_size": {"type": "choice", "values": [4, 0]}}
    with pytest.raises(ValueError, match=r"reaches 0; expected decoding.beam_size >= 1."):
        TransformerHyperModel(config).build(kt.HyperParameters())
