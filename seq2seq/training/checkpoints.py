"""Checkpoints: the last K and the best, atomic, resumable, averageable.

A checkpoint holds the model, the optimizer (its iteration count is the training step, which
drives the schedule) and the run's state: the batches consumed, the best validation metric,
the validations since it improved (early stopping), the share of the time budget spent and why
training stopped. A resumed run therefore continues where the last checkpoint left it, from
that checkpoint alone. tf.train.CheckpointManager writes the data files first and then, with an
atomic rename, the index that names the latest checkpoint: a crash while saving leaves the
previous checkpoint as the latest, loadable one.
"""

import logging
import pathlib
import tempfile

import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)


def checkpoint_directory(run_dir):
    """Where a run directory keeps its checkpoints (the best one in `best/` below)."""
    return pathlib.Path(run_dir) / "checkpoints"


def model_weights(model):
    """`{path: variable}` of every weight of a built Keras `model`, as a checkpoint tracks them.

    A Keras 3 model is not tracked by `tf.train.Checkpoint` through its layers (only the
    layers held directly as attributes are): the other weights were saved only as the
    optimizer's `_trainable_variables`, so frozen weights were not saved at all and a model
    read without its optimizer stayed as initialised. Keyed by path inside the model (without
    the model's own name, which Keras numbers when a process builds a second one), every
    weight is saved and is read back with or without the optimizer.
    """
    prefix = model.name + "/"
    weights = {variable.path.removeprefix(prefix): variable for variable in model.weights}
    if len(weights) != len({id(variable) for variable in model.weights}):
        raise ValueError(f"{model.name} has weights that share a path; expected unique paths.")
    return weights


def _optimizer_list_length(path):
    """How many variables the optimizer of the checkpoint at `path` listed as trainable."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(tf.train.load_checkpoint(path).get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    children = {child.local_name: child.node_id for child in graph.nodes[0].children}
    if "optimizer" not in children:
        return 0
    optimizer = {child.local_name: child.node_id
                 for child in graph.nodes[children["optimizer"]].children}
    if "_trainable_variables" not in optimizer:
        return 0
    return len(graph.nodes[optimizer["_trainable_variables"]].children)


def require_checkpoint(run_dir, training):
    """Raises `FileNotFoundError` unless `run_dir` holds a checkpoint."""
    directory = checkpoint_directory(run_dir)
    if not tf.train.latest_checkpoint(str(directory)):
        raise FileNotFoundError(
            f"{run_dir} has no checkpoint in {directory}: training wrote none yet (one every "
            f"training.eval_every={training.eval_every} steps and at the end); expected a "
            "trained run, e.g. after `seq2seq train`."
        )


class Checkpoints:
    """The checkpoints of one run directory.

    Args:
        run_dir: the run directory; checkpoints go to `run_dir/checkpoints` and the best one to
            `run_dir/checkpoints/best`.
        model: the Keras model.
        optimizer: its optimizer; None to open a run for inference (the model's weights only
            are read).
        keep: how many recent checkpoints to keep.
        is_chief: False on the non-chief workers of a multi-worker cluster, which write their
            (identical) checkpoints to a private temporary directory instead of the run's.
        budget_used: the scalar float variable the time budget's clock advances (a new one
            when None).
    """

    def __init__(self, run_dir, model, optimizer=None, keep=3, is_chief=True, budget_used=None):
        self.run_dir = pathlib.Path(run_dir)
        self.directory = checkpoint_directory(run_dir)
        if not is_chief:
            self.directory = pathlib.Path(tempfile.mkdtemp(prefix="seq2seq-worker-"))
        self.batches = tf.Variable(0, dtype=tf.int64, trainable=False, name="batches")
        self.best_metric = tf.Variable(-np.inf, dtype=tf.float64, trainable=False, name="best")
        # Validations in a row without a better metric (early stopping's counter).
        self.bad_validations = tf.Variable(0, dtype=tf.int64, trainable=False,
                                           name="bad_validations")
        self.budget_used = budget_used if budget_used is not None else tf.Variable(
            0.0, trainable=False, name="budget_used")
        # "" while training goes on; then "all steps done", "time budget" or "early stopping".
        self.stop_reason = tf.Variable("", dtype=tf.string, trainable=False, name="stop_reason")
        core = dict(weights=model_weights(model), batches=self.batches,
                    best_metric=self.best_metric)
        if optimizer is not None:
            core["optimizer"] = optimizer
        # Written as one checkpoint; read in two parts, so that a run written before the state
        # was recorded still opens (its state then starts from the defaults above).
        state = dict(bad_validations=self.bad_validations, budget_used=self.budget_used,
                     stop_reason=self.stop_reason)
        self.checkpoint = tf.train.Checkpoint(**core, **state)
        self._core = tf.train.Checkpoint(**core)
        self._state = tf.train.Checkpoint(**state)
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
        core = self._core
        if self.optimizer is None and not any(
                name.startswith("weights/") for name, _ in tf.train.list_variables(path)):
            # Written before the weights were keyed by path: they are there only as the
            # optimizer's list, in the order of the model's trainable variables then (with an
            # optimizer, its own list reads them).
            core = self._by_optimizer_list(path)
        core.read(path).assert_existing_objects_matched().expect_partial()
        self._state.read(path).expect_partial()
        return path

    def _by_optimizer_list(self, path):
        listed = _optimizer_list_length(path)
        trainable = self.model.trainable_variables
        if listed != len(trainable):
            raise ValueError(
                f"{path} holds {listed} optimizer-listed weights, expected the "
                f"{len(trainable)} trainable weights of this model; a checkpoint of an older "
                "version whose model had frozen layers cannot be read for inference: resume "
                "its training for one step to rewrite it."
            )
        holder = tf.Module()
        holder._trainable_variables = list(trainable)
        return tf.train.Checkpoint(optimizer=holder, batches=self.batches,
                                   best_metric=self.best_metric)

    def average_last(self, count):
        """Sets the model weights to the mean of the last `count` checkpoints (of those that
        exist: with one, its weights as they are).

        Each checkpoint is restored in turn and its weights summed; the rest of the state is
        left as the latest checkpoint has it. Returns the number of checkpoints averaged.
        """
        paths = self.manager.checkpoints[-count:]
        if not paths:
            raise FileNotFoundError(f"{self.directory} holds no checkpoint to average.")
        totals = None
        for path in paths:
            self.restore(path)
            weights = [np.asarray(w, dtype=np.float64) for w in self.model.get_weights()]
            totals = weights if totals is None else [t + w for t, w in zip(totals, weights)]
        if len(paths) > 1:
            self.model.set_weights([t / len(paths) for t in totals])
        return len(paths)

    def restore_final(self, training):
        """Loads the weights the run stands for, by its `TrainingConfig`: the mean of the last
        `average_checkpoints` checkpoints when that is over 1 (of those kept, with a warning
        when fewer exist), else the best checkpoint or the last one (`final_checkpoint`; the
        last where no validation chose a best). Returns a line saying which."""
        if self.latest is None:  # never decode with the initial random weights
            require_checkpoint(self.run_dir, training)
        best = self.best_manager.latest_checkpoint
        if training.average_checkpoints > 1:
            averaged = self.average_last(training.average_checkpoints)
            if averaged < training.average_checkpoints:
                logger.warning(
                    "training.average_checkpoints=%d but %s holds %d checkpoint(s): averaged "
                    "those.", training.average_checkpoints, self.directory, averaged)
            return f"the mean of {averaged} checkpoint(s) up to {self.latest}"
        if training.final_checkpoint == "best" and best:
            return f"the best checkpoint {self.restore(best)}"
        return f"the last checkpoint {self.restore()}"
