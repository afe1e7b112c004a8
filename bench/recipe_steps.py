"""What the benches of the recipe's own training step share: `Run`s of one recipe that train
alternately on the same cached real batches, each epoch timed by a callback.

Used by bench/precision.py and bench/training_objective.py.
"""

import argparse
import tempfile
import time

import keras
import tensorflow as tf

from seq2seq import config as config_lib
from seq2seq.training import inputs, trainer


def parse_args(description):
    """The options of every such bench: the recipe, the batches per epoch, the rounds."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default="translation")
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    return parser.parse_args()


def recipe_runs(config_path, overrides):
    """{name: `Run`} of the recipe at `config_path`, one per list of `--set` overrides; the
    runs share the training seed, hence the initial weights."""
    runs = {}
    with tempfile.TemporaryDirectory() as run_dir:
        for name, sets in overrides.items():
            config = config_lib.load(config_path, sets)
            runs[name] = trainer.Run(config, run_dir, print_fn=lambda *_: None)
    return runs


def cached_batches(run, count):
    """The first `count` training batches of `run`'s recipe, cached, and their real target
    tokens."""
    batches = inputs.train_dataset(
        run.config.data, run.train_pairs, run.source_tokenizer, run.target_tokenizer,
        run.config.model.max_length,
    ).take(count).cache()
    target_tokens = sum(int(tf.math.count_nonzero(weights)) for _, _, weights in batches)
    return batches, target_tokens


class EpochTimer(keras.callbacks.Callback):
    """The epoch's own wall and CPU time: `fit` on the 2-core machines at times takes seconds
    more to return after its last step (up to ~20 s after its start, whatever the steps took),
    which would land on whichever run it hits."""

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
        self.start_cpu = time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.start
        self.cpu_seconds = time.process_time() - self.start_cpu


def alternate(runs, batches, count, target_tokens, rounds):
    """One warm-up epoch per run (every batch shape traced), then `rounds` rounds of one epoch
    per run in turn. Returns {name: (wall seconds, CPU seconds)} summed over the rounds."""

    def epoch(name):
        timer = EpochTimer()
        runs[name].model.fit(batches, steps_per_epoch=count, epochs=1, verbose=0,
                             callbacks=[timer])
        return timer.seconds, timer.cpu_seconds

    for name in runs:
        epoch(name)
    totals = {name: (0.0, 0.0) for name in runs}
    for round_index in range(rounds):
        for name in runs:
            seconds, cpu = epoch(name)
            totals[name] = (totals[name][0] + seconds, totals[name][1] + cpu)
            print(f"round {round_index} {name}: {target_tokens / seconds:.0f} tgt tok/s "
                  f"({seconds:.1f} s, {cpu:.1f} s of CPU)", flush=True)
    return totals
