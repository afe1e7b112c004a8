"""tf.distribute on CPU: MirroredStrategy over two logical CPUs, and a two-process
MultiWorkerMirroredStrategy cluster on localhost, against the single-device run."""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.training.conftest import shrink

WORKER = Path(__file__).with_name("distributed_worker.py")
ROOT = Path(__file__).parents[2]
SETTINGS = dict(
    training={"precision": "float32", "seed": 7, "steps": 4, "eval_every": 4,
              "valid_sentences": 4},
    model={"dropout": 0.0},
)


def launch(config, run_dir, strategy, cpus, out, env=None, overrides=()):
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(config), str(run_dir), strategy, str(cpus), str(out),
         *overrides],
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def finish(process, out, timeout=300):
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-3000:]
    return json.loads(Path(out).read_text())


def train(config, directory, strategy, cpus, env=None):
    """One training process to its end; its results."""
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / "out.json"
    return finish(launch(config, directory / "run", strategy, cpus, out, env=env), out)


def assert_same_weights(directory, reference, atol=1e-5):
    """Every trained weight the worker of `directory` saved equals `reference`'s."""
    ours, theirs = np.load(directory / "out.npz"), np.load(reference / "out.npz")
    assert len(ours.files) == len(theirs.files) > 0
    for name in theirs.files:
        np.testing.assert_allclose(ours[name], theirs[name], atol=atol, rtol=0, err_msg=name)


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_mirrored_strategy_clips_the_summed_gradient_as_one_device_does(tmp_path):
    # Batches of 16 examples, split 8 and 8 over the replicas; clip_norm so small that every
    # step is clipped. Keras' optimizer clipped each replica's half of the gradient by its own
    # norm and then summed them: another direction than one device's, and up to twice the
    # norm. Measured after 4 steps: every weight within 2.3e-3 of one device's with that
    # order, 3.4e-7 with the halves summed first (seq2seq.training.optimizers).
    settings = {"data": {"batch_size": 16, "batch_tokens": None}, "model": SETTINGS["model"],
                "training": {**SETTINGS["training"], "clip_norm": 1e-3}}
    config = shrink("translation", tmp_path, **settings)
    single = train(config, tmp_path / "single", "default", 1)
    mirrored = train(config, tmp_path / "mirrored", "mirrored", 2)
    assert mirrored["replicas"] == 2
    np.testing.assert_allclose(mirrored["losses"], single["losses"], rtol=1e-6)
    assert_same_weights(tmp_path / "mirrored", tmp_path / "single", atol=1e-5)


def test_mirrored_strategy_sums_the_gradients_one_device_computes(tmp_path):
    # Plain SGD, no clipping: the weights after 4 steps are the summed gradients' doing, and
    # match one device's to float rounding (measured 7.5e-9). With Adam they drift apart from
    # the second step on (2.6e-4 after 4 steps, median 7e-5): Adam divides each gradient by
    # sqrt(v) + 1e-9, and where a gradient is near zero that ratio magnifies the rounding of
    # summing two halves instead of one batch (with epsilon 1e-3: 3e-8). Its first step,
    # lr * sign(gradient), is the same bit for bit.
    settings = {"data": {"batch_size": 16, "batch_tokens": None}, "model": SETTINGS["model"],
                "training": {**SETTINGS["training"], "clip_norm": None}}
    config = shrink("translation", tmp_path, **settings)
    sgd = {"WORKER_PLAIN_SGD": "1"}
    single = train(config, tmp_path / "single", "default", 1, env=sgd)
    mirrored = train(config, tmp_path / "mirrored", "mirrored", 2, env=sgd)
    assert mirrored["replicas"] == 2
    np.testing.assert_allclose(mirrored["losses"], single["losses"], rtol=1e-6)
    assert_same_weights(tmp_path / "mirrored", tmp_path / "single", atol=1e-7)


def test_mirrored_strategy_with_one_example_batches_leaves_a_replica_empty_and_matches(tmp_path):
    # Batches of one example on two replicas: every step, the second replica gets none.
    # Keras' build reduction failed on the first such batch ([1, T] and [0, T] do not add),
    # and its loss (the mean of the replicas' token means) halved the loss and the gradient;
    # the loss is the mean over the global batch's tokens.
    settings = {**SETTINGS, "data": {"batch_size": 1, "batch_tokens": None}}
    config = shrink("translation", tmp_path, **settings)
    single = train(config, tmp_path / "single", "default", 1)
    mirrored = train(config, tmp_path / "mirrored", "mirrored", 2)
    assert mirrored["replicas"] == 2
    np.testing.assert_allclose(mirrored["losses"], single["losses"], rtol=1e-4)
    assert_same_weights(tmp_path / "mirrored", tmp_path / "single")


def test_multi_worker_refuses_a_time_budget_before_any_work(tmp_path):
    from seq2seq import config as config_lib
    from seq2seq.training import trainer

    overrides = ["training.strategy=multi_worker", "training.time_budget_minutes=9.5"]
    with pytest.raises(ValueError, match="time_budget_minutes=9.5 with training.strategy="
                       "'multi_worker': workers must stop at the same step"):
        config_lib.load("translation", overrides)
    # A config built in Python is refused by train() alike, before anything is written.
    config = config_lib.load("translation")
    config.training.strategy, config.training.time_budget_minutes = "multi_worker", 9.5
    with pytest.raises(ValueError, match="workers must stop at the same step"):
        trainer.train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_cluster_of_one_worker_trains_with_auto_precision_measured(tmp_path):
    # Two failures, both fixed: `auto` times matmuls on a CPU with bfloat16 dot products, and
    # run before the strategy those first TensorFlow ops made MultiWorkerMirroredStrategy fail
    # ("Collective ops must be configured at program startup"); and a cluster of one worker
    # got 1-element logs (the multi-worker patch of `prepare_model`) that nothing reduced.
    config = shrink("translation", tmp_path, **{**SETTINGS, "data": {"static_shapes": True}})
    (port,) = free_ports(1)
    tf_config = json.dumps({"cluster": {"worker": [f"localhost:{port}"]},
                            "task": {"type": "worker", "index": 0}})
    out = tmp_path / "out.json"
    result = finish(launch(config, tmp_path / "run", "multi_worker", 1, out,
                           env={"TF_CONFIG": tf_config, "WORKER_CPU_FLAGS": "avx512f avx512_bf16"},
                           overrides=["training.precision=auto"]), out, timeout=120)
    assert result["replicas"] == 1
    printed = result["printed"]
    (precision_line,) = [line for line in printed if line.startswith("precision:")]
    (validation_line,) = [line for line in printed if line.startswith("validation at")]
    assert re.fullmatch(r"precision: auto -> (float32|mixed_bfloat16) \(CPU bfloat16 matmul "
                        r"\d+\.\d\dx float32, needs 1\.25x\)", precision_line)
    assert validation_line.startswith("validation at step 4: bleu ")
    assert np.isfinite(result["losses"]).all() and result["losses"]


def test_two_worker_cluster_trains_in_lockstep_and_matches_one_device(tmp_path):
    # Multi-worker batches have static shapes; so has this single-device reference.
    settings = {**SETTINGS, "data": {"static_shapes": True, "batch_tokens": 480}}
    config = shrink("translation", tmp_path, **settings)
    single = train(config, tmp_path / "single", "default", 1)
    # A cluster of one worker (one machine) trains on the same batches: the same weights.
    (port,) = free_ports(1)
    one = {"cluster": {"worker": [f"localhost:{port}"]}, "task": {"type": "worker", "index": 0}}
    (tmp_path / "one").mkdir()
    finish(launch(config, tmp_path / "one" / "run", "multi_worker", 1, tmp_path / "one" /
                  "out.json", env={"TF_CONFIG": json.dumps(one)}), tmp_path / "one" / "out.json",
           timeout=120)
    assert_same_weights(tmp_path / "one", tmp_path / "single")
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    processes = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        processes.append(launch(config, tmp_path / f"run{index}", "multi_worker", 1,
                                tmp_path / f"out{index}.json", env={"TF_CONFIG": tf_config}))
    results = [finish(p, tmp_path / f"out{i}.json", timeout=120) for i, p in
               enumerate(processes)]
    assert [r["replicas"] for r in results] == [2, 2]
    # Synchronous training: both workers hold the same weights and log the same all-reduced
    # loss.
    np.testing.assert_allclose(results[0]["first_kernel"], results[1]["first_kernel"], atol=1e-6)
    assert results[0]["losses"] == results[1]["losses"]
    # Each worker trains on its shard of the batches (tf.data's auto-sharding), so a step of
    # the cluster averages two different batches, twice the one device's: not the same
    # training, only the same course. (The one-worker cluster above is the exact comparison.)
    np.testing.assert_allclose(results[0]["losses"][-1], single["losses"][-1], rtol=0.1)
    np.testing.assert_allclose(results[0]["weight_sum"], single["weight_sum"], rtol=1e-3)
    # Only the chief (worker 0) writes the run's checkpoints.
    assert list((tmp_path / "run0" / "checkpoints").glob("*.index"))
    assert not (tmp_path / "run1" / "checkpoints").exists()


@pytest.mark.parametrize("tpu", [None, "local"])
def test_tpu_strategy_without_a_tpu_stops_with_what_it_expected_and_found(tmp_path, tpu):
    # No TPU here: TPUClusterResolver finds no name (None), or the local runtime has no TPU
    # ("local"); either way the run stops before anything is written.
    from seq2seq import config as config_lib
    from seq2seq.training import trainer

    overrides = ["training.strategy=tpu"] + ([f"training.tpu={tpu}"] if tpu else [])
    config = config_lib.load(shrink("translation", tmp_path, **SETTINGS), overrides)
    found = {None: "ValueError: Please provide a TPU Name",
             "local": "NotFoundError: TPUs not found"}[tpu]
    with pytest.raises(RuntimeError, match=rf"training.strategy='tpu' with training.tpu={tpu!r}: "
                       rf"expected a reachable TPU, found none \({found}"):
        trainer.train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_tpu_step_xla_compiled_on_static_shapes_matches_the_plain_step(tmp_path):
    # What TPUStrategy runs, short of a TPU: every batch padded to one shape and the whole
    # train step (model, written-out loss gradient, fused Adam, clipping) compiled by XLA.
    results = {}
    for jit_compile in (False, True):
        directory = tmp_path / f"jit_compile_{jit_compile}"
        directory.mkdir()
        config = shrink("translation", directory, model=SETTINGS["model"],
                        training={**SETTINGS["training"], "jit_compile": jit_compile},
                        data={"static_shapes": True, "batch_tokens": 480})
        results[jit_compile] = train(config, directory, "default", 1)
    plain, compiled = results[False], results[True]
    assert len(compiled["losses"]) == len(plain["losses"]) > 0
    np.testing.assert_allclose(compiled["losses"], plain["losses"], rtol=1e-4)
    np.testing.assert_allclose(compiled["first_kernel"], plain["first_kernel"], atol=1e-5)
    np.testing.assert_allclose(compiled["weight_sum"], plain["weight_sum"], rtol=1e-5)
