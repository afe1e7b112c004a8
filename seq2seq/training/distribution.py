"""tf.distribute strategies, chosen by name in the config."""

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def get_distribution_strategy(name):
    """The strategy `name`:

    - "default": no distribution (one device);
    - "mirrored": MirroredStrategy, every GPU of one machine (or the logical CPUs configured);
    - "multi_worker": MultiWorkerMirroredStrategy, machines described by the TF_CONFIG
      environment variable;
    - "tpu": TPUStrategy on the TPU found by TPUClusterResolver.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        # Keras 3's `fit` fails under this strategy (keras-team/keras#20585: its symbolic
        # build and its log reduction both call strategy.reduce in ways
        # CollectiveAllReduceStrategy rejects). Say so before any work is done.
        raise NotImplementedError(
            "training.strategy='multi_worker' is not supported yet: Keras 3's model.fit fails "
            "under MultiWorkerMirroredStrategy (keras-team/keras#20585). Use 'mirrored' on one "
            "machine."
        )
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(
        f"training.strategy={name!r}; expected one of {', '.join(STRATEGIES)}."
    )

