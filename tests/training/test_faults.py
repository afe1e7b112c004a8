"""Resume, NaN, and crashes while saving."""

import json
import re
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.checkpoint import checkpoint_management

from seq2seq import config as config_lib
from seq2seq.run_directory import load_run
from seq2seq.training import trainer
from seq2seq.training.callbacks import BudgetClock
from seq2seq.training.checkpoints import Checkpoints

DETERMINISTIC = dict(training={"precision": "float32", "seed": 7}, model={"dropout": 0.0})


def losses(lines):
    """`{step: running loss}` from the progress lines."""
    found = {}
    for line in lines:
        match = re.match(r"step (\d+)/\d+ loss ([\d.]+)", line)
        if match:
            found[int(match.group(1))] = float(match.group(2))
    return found


def train(path, run_dir, *overrides):
    lines = []
    run = trainer.train(config_lib.load(path, list(overrides)), run_dir, print_fn=lines.append)
    return run, lines


def test_resume_continues_exactly_where_it_stopped(tmp_path, shrunk):
    path = shrunk("translation", tmp_path, **DETERMINISTIC)
    # The interruption is a first run of 6 steps: with the recipe's linear schedule, which
    # decays towards `training.steps`, its rates would differ from a 9-step run's by design.
    schedule = "training.schedule=inverse_sqrt"
    overrides = ("training.steps=9", "training.eval_every=3", schedule)
    full, full_lines = train(path, tmp_path / "full", *overrides)

    # Interrupted after the first 6 steps (two checkpoints), then the same command again.
    keras.backend.clear_session()
    train(path, tmp_path / "split", "training.steps=6", "training.eval_every=3", schedule)
    keras.backend.clear_session()
    resumed, resumed_lines = train(path, tmp_path / "split", *overrides)

    assert any("resuming from" in line and "ckpt-6" in line for line in resumed_lines)
    assert int(resumed.model.optimizer.iterations.numpy()) == 9
    assert int(full.model.optimizer.iterations.numpy()) == 9
    full_losses, resumed_losses = losses(full_lines), losses(resumed_lines)
    assert set(resumed_losses) == {9}  # only the remaining steps ran
    assert resumed_losses[9] == pytest.approx(full_losses[9], abs=1e-4)
    for a, b in zip(full.model.weights, resumed.model.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4)


def test_budget_clock_reports_the_share_of_the_time_budget_spent():
    used = keras.Variable(0.0, trainable=False)
    clock = BudgetClock(used, deadline=time.time() + 30, budget_seconds=120)
    clock.on_train_batch_begin(0)
    assert float(used.numpy()) == pytest.approx(0.75, abs=0.01)
    BudgetClock(used, deadline=time.time() - 5, budget_seconds=120).on_train_batch_begin(0)
    assert float(used.numpy()) == 1.0  # past the deadline: all spent, never more


def test_a_resumed_run_continues_with_what_was_left_of_its_time_budget(tmp_path, shrunk):
    path = shrunk("translation", tmp_path, **DETERMINISTIC)
    overrides = ("training.time_budget_minutes=10", "training.schedule=linear",
                 "training.decay_fraction=1.0", "training.eval_every=3")
    run, _ = train(path, tmp_path / "run", "training.steps=6", *overrides)
    # The budget spent is in the checkpoint (and in the history, for people).
    history = [json.loads(line)
               for line in (tmp_path / "run" / "validation.jsonl").read_text().splitlines()]
    assert [r["step"] for r in history] == [3, 6]
    assert 0 < history[0]["budget_used"] < history[1]["budget_used"] < 0.5
    reader = tf.train.load_checkpoint(run.checkpoints.latest)
    assert reader.get_tensor("budget_used/.ATTRIBUTES/VARIABLE_VALUE") == pytest.approx(
        history[1]["budget_used"])
    # As if the checkpoint of step 6 had been written with 90% of the budget spent.
    run.budget_used.assign(0.9)
    run.checkpoints.save(6)

    keras.backend.clear_session()
    resumed, lines = train(path, tmp_path / "run", "training.steps=12", *overrides)
    assert any("resuming from" in line and "ckpt-6" in line for line in lines)
    # The clock went on from 90% (a fresh budget would restart near 0)...
    used = float(resumed.budget_used.numpy())
    assert 0.9 <= used < 0.99
    # ...and the linear schedule decayed with it: at step 9, 1 - 10/12 of the peak by steps
    # alone, about a tenth by the budget.
    peak = config_lib.load(path).training.learning_rate
    lr_at_9 = float(re.search(r"^step 9/12 .* lr (\S+)", "\n".join(lines), re.M).group(1))
    assert peak * (1 - used) * 0.99 <= lr_at_9 <= peak * 0.1 * 1.01  # printed with 3 digits


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, shrunk):
    path = shrunk("translation", tmp_path, **DETERMINISTIC)
    run, _ = train(path, tmp_path / "run", "training.steps=3", "training.eval_every=3")
    good = run.checkpoints.latest
    good_weights = [np.asarray(w) for w in run.model.weights]
    keras.backend.clear_session()
    with pytest.raises(FloatingPointError, match=r"loss became (nan|inf) at step \d+.*ckpt-3"):
        train(path, tmp_path / "run", "training.steps=9", "training.eval_every=3",
              "training.learning_rate=1e30", "training.clip_norm=null")
    keras.backend.clear_session()
    reopened = trainer.Run(config_lib.load(path), tmp_path / "run", print_fn=lambda *a: None)
    assert reopened.checkpoints.latest == good
    reopened.checkpoints.restore()
    for value, expected in zip(reopened.model.weights, good_weights):
        np.testing.assert_array_equal(np.asarray(value), expected)


def test_a_crash_while_saving_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    checkpoints = Checkpoints(tmp_path, model, optimizer)
    first = checkpoints.save(1)
    saved = [np.asarray(w) for w in model.weights]

    model.layers[0].kernel.assign(np.full((2, 1), 5.0, "float32"))

    def crash(*args, **kwargs):
        raise OSError("disk full")

    # The data files of checkpoint 2 are written, then the process dies before the index.
    monkeypatch.setattr(checkpoint_management, "update_checkpoint_state_internal", crash)
    with pytest.raises(OSError, match="disk full"):
        checkpoints.save(2)
    monkeypatch.undo()
    # A torn write of a later checkpoint's data file, too.
    (tmp_path / "checkpoints" / "ckpt-3.data-00000-of-00001").write_bytes(b"\x00garbage")

    reopened = Checkpoints(tmp_path, model, optimizer)
    assert reopened.latest == first
    reopened.restore()
    for value, expected in zip(model.weights, saved):
        np.testing.assert_array_equal(np.asarray(value), expected)


def test_checkpoint_averaging_is_the_mean_of_the_weights(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    checkpoints = Checkpoints(tmp_path, model, optimizer, keep=3)
    for step, value in enumerate([1.0, 2.0, 6.0], start=1):
        model.layers[0].kernel.assign(np.full((2, 1), value, "float32"))
        checkpoints.save(step)
    assert checkpoints.average_last(3) == 3
    np.testing.assert_allclose(np.asarray(model.layers[0].kernel), np.full((2, 1), 3.0))


def test_a_reopened_run_loads_the_weights_it_reports(tmp_path, shrunk):
    # train reports its test metrics and exports with `Run.restore_final`'s weights; the
    # evaluate, translate and export commands reopen the run and must load the same ones.
    path = shrunk("translation", tmp_path, **DETERMINISTIC)
    trained, _ = train(path, tmp_path / "run", "training.average_checkpoints=2")
    paths = trained.checkpoints.manager.checkpoints
    assert [p.rsplit("-", 1)[1] for p in paths] == ["3", "6"]
    weights = []
    for checkpoint in paths:
        trained.checkpoints.restore(checkpoint)
        weights.append([np.asarray(w) for w in trained.model.weights])
    third, sixth = weights
    assert not np.allclose(third[0], sixth[0])
    # Make step 3 the best checkpoint, so that best and last differ.
    trained.checkpoints.restore(paths[0])
    trained.checkpoints.best_manager.save(checkpoint_number=3)

    def reopened(*overrides):
        keras.backend.clear_session()
        run = load_run(tmp_path / "run", list(overrides))
        return [np.asarray(w) for w in run.model.weights]

    for value, a, b in zip(reopened(), third, sixth):  # the mean of the last 2
        np.testing.assert_allclose(value, (a + b) / 2, rtol=1e-6, atol=1e-7)
    best = reopened("training.average_checkpoints=1", "training.final_checkpoint=best")
    for value, expected in zip(best, third):
        np.testing.assert_array_equal(value, expected)
    last = reopened("training.average_checkpoints=1", "training.final_checkpoint=last")
    for value, expected in zip(last, sixth):
        np.testing.assert_array_equal(value, expected)
    with pytest.raises(ValueError, match="training.final_checkpoint='final'; expected one of best, "
                                         "last."):
        reopened("training.final_checkpoint=final")


def test_resuming_under_another_architecture_is_refused_and_leaves_the_run_as_it_was(
        tmp_path, shrunk):
    path = shrunk("translation", tmp_path, **DETERMINISTIC)
    train(path, tmp_path / "run", "training.steps=3", "training.eval_every=3")
    saved = (tmp_path / "run" / "config.yaml").read_text()
    keras.backend.clear_session()
    with pytest.raises(ValueError, match=(
            r"run holds a model trained with model.num_decoder_layers=1; this config has "
            r"model.num_decoder_layers=2. .* expected model.num_decoder_layers=1, or a new "
            r"--run-dir.")):
        train(path, tmp_path / "run", "training.steps=6", "model.num_decoder_layers=2")
    assert (tmp_path / "run" / "config.yaml").read_text() == saved
    # Training settings and dropout may change: the run resumes.
    keras.backend.clear_session()
    run, lines = train(path, tmp_path / "run", "training.steps=4", "training.eval_every=1",
                       "model.dropout=0.2")
    assert any(line.startswith("resuming from") for line in lines)
    assert int(run.model.optimizer.iterations.numpy()) == 4


def test_a_run_without_a_checkpoint_is_refused_not_decoded_with_random_weights(
        tmp_path, shrunk, capsys):
    from seq2seq.cli import main

    # A run stopped before its first checkpoint: its config is there, no weights.
    config_lib.save(config_lib.load(shrunk("translation", tmp_path)),
                    tmp_path / "run" / "config.yaml")
    source = tmp_path / "in.txt"
    source.write_text("Insert a sheet.\n")
    for command in (["translate", str(tmp_path / "run"), "--input", str(source)],
                    ["evaluate", str(tmp_path / "run")]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert f"{tmp_path / 'run'} has no checkpoint in {tmp_path / 'run' / 'checkpoints'}" in err


def test_fine_tuning_with_a_frozen_encoder(tmp_path, shrunk):
    path = shrunk("translation", tmp_path, **DETERMINISTIC)
    base, _ = train(path, tmp_path / "base", "training.steps=3", "training.eval_every=3",
                    "model.share_embeddings=false")
    encoder_before = [np.asarray(w) for w in base.model.encoder_layers[0].weights]
    keras.backend.clear_session()
    tuned, lines = train(
        path, tmp_path / "tuned", "training.steps=3", "training.eval_every=3",
        "model.share_embeddings=false", f"training.init_checkpoint={tmp_path / 'base'}",
        "training.freeze_encoder=true",
    )
    assert any("initialised from" in line for line in lines)
    for value, expected in zip(tuned.model.encoder_layers[0].weights, encoder_before):
        np.testing.assert_array_equal(np.asarray(value), expected)
    decoder = np.asarray(tuned.model.decoder_layers[0].weights[0])
    assert not np.array_equal(decoder, np.asarray(base.model.decoder_layers[0].weights[0]))


def test_a_checkpoint_of_the_older_layout_is_read_for_inference(tmp_path):
    # Until 2026-12-05 a checkpoint held `model=` (which tracks only the layers held directly
    # as attributes) and the optimizer, whose list of trainable variables carried the rest.
    from seq2seq.models import Transformer

    def built(freeze=False):
        keras.backend.clear_session()
        model = Transformer.from_size("tiny", source_vocabulary_size=40,
                                      target_vocabulary_size=40, max_length=8)
        dummy = tf.ones((1, 2), tf.int32)
        model((dummy, dummy))
        if freeze:
            model.encoder_layers[0].trainable = False
        return model

    for freeze in (False, True):
        trained = built(freeze)
        optimizer = keras.optimizers.Adam()
        optimizer.build(trained.trainable_variables)
        for variable in trained.weights:
            variable.assign(np.random.default_rng(0).normal(size=variable.shape))
        expected = [np.asarray(w) for w in trained.weights]
        old = tf.train.Checkpoint(model=trained, optimizer=optimizer,
                                  batches=tf.Variable(0, dtype=tf.int64),
                                  best_metric=tf.Variable(0.0, dtype=tf.float64))
        path = old.write(str(tmp_path / f"frozen{freeze}" / "checkpoints" / "ckpt-1"))
        opened = built()
        checkpoints = Checkpoints(tmp_path / f"frozen{freeze}", opened)
        if freeze:  # the frozen weights were never saved: refused, not decoded at random
            with pytest.raises(ValueError, match=r"holds 26 optimizer-listed weights, expected "
                                                 r"the 38 trainable weights"):
                checkpoints.restore(path)
            continue
        assert checkpoints.restore(path) == path
        for value, weight in zip(opened.weights, expected):
            np.testing.assert_array_equal(np.asarray(value), weight)
