"""tf.distribute strategies, chosen by name in the config."""

import types

import tensorflow as tf
from keras import tree

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def get_distribution_strategy(name, tpu=None):
    """The strategy `name`:

    - "default": no distribution (one device);
    - "mirrored": MirroredStrategy, every GPU of one machine (or the logical CPUs configured);
    - "multi_worker": MultiWorkerMirroredStrategy, machines described by the TF_CONFIG
      environment variable;
    - "tpu": TPUStrategy on the TPU `tpu` (a name, a grpc:// address, or "local" on a TPU VM;
      None: TPUClusterResolver's own search, the TPU_NAME variable or the Cloud TPU
      environment).
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        return _tpu_strategy(tpu)
    raise ValueError(
        f"training.strategy={name!r}; expected one of {', '.join(STRATEGIES)}."
    )


def _tpu_strategy(tpu):
    # TensorFlow's own errors here ("Please provide a TPU Name to connect to.", or an op
    # kernel missing on a machine without TPUs) do not say which setting led there.
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        message = str(error).strip().splitlines()[0]
        raise RuntimeError(
            f"training.strategy='tpu' with training.tpu={tpu!r}: expected a reachable TPU, "
            f"found none ({type(error).__name__}: {message}). Set training.tpu to the TPU's "
            "name or grpc:// address, or to 'local' on a TPU VM, or choose another "
            "training.strategy."
        ) from error
    return tf.distribute.TPUStrategy(resolver)


def prepare_model(model, strategy):
    """Makes `model.fit` work under `strategy`; a no-op except under
    MirroredStrategy and MultiWorkerMirroredStrategy.

    Keras 3's TensorFlow trainer, before the first step, reduces the whole first data batch
    across replicas with `strategy.reduce("MEAN", ...)` only to learn its shapes and build the
    model symbolically. That fails in two cases:
    - MirroredStrategy splits a global batch whose example count does not divide by the
      replica count unevenly (a batch of one example on two replicas gives them
      shapes [1, T] and [0, T]), and the mean of tensors of unequal shapes is an error; with
      token-budget batches such counts are common.
    - MultiWorkerMirroredStrategy's collective reduce takes a single tensor, not a structure
      (keras-team/keras#20585).
    Building needs only shapes, so this model builds from the first local replica's batch
    instead. The second part of keras-team/keras#20585, multi-worker only: after every step
    the logs are reduced with `reduce("MEAN", value, axis=0)`, which fails on scalars; this
    model's `train_step` then returns its logs as 1-element vectors, and the mean over axis 0
    across workers gives back the scalars Keras expects. A cluster of one worker (or no
    TF_CONFIG) is not reduced at all, so there the logs stay scalars.
    The patches are on this model instance only, and can go once Keras fixes the bugs.
    """
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    if not (multi_worker or isinstance(strategy, tf.distribute.MirroredStrategy)):
        return model

    def first_local_value(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def symbolic_build_from_local_batch(self, iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tree.map_structure(first_local_value, next(batches))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = types.MethodType(symbolic_build_from_local_batch, model)
    if multi_worker and _worker_count(strategy) > 1:
        train_step = model.train_step

        def train_step_with_vector_logs(self, data):
            return {name: tf.reshape(value, [1]) for name, value in train_step(data).items()}

        model.train_step = types.MethodType(train_step_with_vector_logs, model)
    return model


def _worker_count(strategy):
    """The processes of a MultiWorkerMirroredStrategy cluster: its chief and workers (0
    without TF_CONFIG)."""
    spec = strategy.cluster_resolver.cluster_spec()
    return sum(spec.num_tasks(job) for job in spec.jobs if job in ("chief", "worker"))
