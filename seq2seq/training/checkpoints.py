"""Checkpoints: the last K and the best, atomic, resumable, averageable.

A checkpoint holds the model, the optimizer (its iteration count is the training step, which
drives the schedule) and the number of batches consumed, so a resumed run continues where the
last checkpoint left it. tf.train.CheckpointManager writes the data files first and then, with
an atomic rename, the index that names the latest checkpoint: a crash while saving leaves the
previous checkpoint as the latest, loadable one.
"""

import pathlib
import tempfile

import numpy as np
import tensorflow as tf


def checkpoint_directory(run_dir):
    """Where a run directory keeps its checkpoints (the best one in `best/` below)."""
    return pathlib.Path(run_dir) / "checkpoints"


class Checkpoints:
    """The checkpoints of one run directory.

    Args:
        run_dir: the run directory; checkpoints go to `run_dir/checkpoints` and the best one to
            `run_dir/checkpoints/best`.
        model: the Keras model.
        optimizer: its optimizer.
        keep: how many recent checkpoints to keep.
        is_chief: False on the non-chief workers of a multi-worker cluster, which write their
            (identical) checkpoints to a private temporary directory instead of the run's.
    """

    def __init__(self, run_dir, model, optimizer, keep=3, is_chief=True):
        self.directory = checkpoint_directory(run_dir)
        if not is_chief:
            self.directory = pathlib.Path(tempfile.mkdtemp(prefix="seq2seq-worker-"))
        self.batches = tf.Variable(0, dtype=tf.int64, trainable=False, name="batches")
        self.best_metric = tf.Variable(-np.inf, dtype=tf.float64, trainable=False, name="best")
        self.checkpoint = tf.train.Checkpoint(
            model=model, optimizer=optimizer, batches=self.batches, best_metric=self.best_metric
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(self.directory), max_to_keep=keep, checkpoint_name="ckpt"
        )
        self.best_manager = tf.train.CheckpointManager(
            self.checkpoint, str(self.directory / "best"), max_to_keep=1, checkpoint_name="ckpt"
        )
        self.model = model
        self.optimizer = optimizer

    @property
    def latest(self):
        return self.manager.latest_checkpoint

    def save(self, step):
        return self.manager.save(checkpoint_number=step)

    def save_best(self, step, metric):
        self.best_metric.assign(metric)
        path = self.best_manager.save(checkpoint_number=step)
        self.manager.save(checkpoint_number=step)  # keep the recorded best in the latest too
        return path

    def restore(self, path=None):
        """Restores `path` (default the latest); returns the path, or None if there is none."""
        path = path or self.latest
        if path is None:
            return None
        self.checkpoint.read(path).assert_existing_objects_matched().expect_partial()
        return path

    def average_last(self, count):
        """Sets the model weights to the mean of the last `count` checkpoints.

        Each checkpoint is restored in turn and its weights summed; the optimizer is left as
        the latest checkpoint has it. Returns the number of checkpoints averaged.
        """
        paths = self.manager.checkpoints[-count:]
        if len(paths) < 2:
            return len(paths)
        totals = None
        for path in paths:
            self.restore(path)
            weights = [np.asarray(w, dtype=np.float64) for w in self.model.get_weights()]
            totals = weights if totals is None else [t + w for t, w in zip(totals, weights)]
        self.restore(paths[-1])
        self.model.set_weights([t / len(paths) for t in totals])
        return len(paths)
