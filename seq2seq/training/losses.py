"""Label-smoothed cross-entropy over sparse labels, with its gradient written out."""

import functools

import keras
from keras import ops


def label_smoothed_cross_entropy(labels, logits, label_smoothing=0.0):
    """Per-token loss `log Z - (1 - e) z_y - e mean_v(z_v)` of logits `z` against `labels`.

    That is `(1 - e) * -log p(y) + e * mean_v(-log p(v))`: the smoothed target puts
    `1 - e + e / V` on the label and `e / V` on every entry of the vocabulary (the uniform share
    spread over the whole vocabulary, as in Szegedy et al. and fairseq). The gradient,
    `softmax(z) - target`, is written out (`ops.custom_gradient`).

    Why not the backend's fused op: on the CPU, TensorFlow's
    `softmax_cross_entropy_with_logits` takes the dense smoothed target (a one-hot, a multiply
    and an add over `(tokens, vocabulary)` first) and runs on one thread; its sparse variant
    (no smoothing) also runs slower than this. The `(tokens, vocabulary)` tensor is the largest
    of a training step (82 MB for 64 x 40 tokens and 8000 pieces), so what costs is the number
    of passes over it. Forward: the softmax (one oneDNN kernel on the CPU), whose largest
    probability, at least 1 / V, gives `log Z = max(z) - log max(p)` without underflow; and
    two reductions. Backward: `upstream * (p - target)` in one pass, compiled by XLA (on
    TensorFlow a `jit_compile` function, one fused loop; Keras' JAX backend compiles the whole
    step anyway) where TensorFlow's element-wise ops would make five passes.
    `bench/training_objective.py` measures it.

    Args:
        labels: integer tensor `(...)`.
        logits: float tensor `(..., V)`; computed in float32 whatever its dtype.
        label_smoothing: e in [0, 1).

    Returns:
        float32 tensor `(...)`.
    """
    logits = ops.cast(logits, "float32")
    labels = ops.cast(labels, "int32")
    smoothing = float(label_smoothing)

    @ops.custom_gradient
    def loss_with_gradient(logits):
        probabilities = ops.softmax(logits, axis=-1)
        # log Z from the largest probability (>= 1 / V: its log cannot underflow).
        log_normalizer = ops.max(logits, axis=-1) - ops.log(ops.max(probabilities, axis=-1))
        label_logit = ops.squeeze(ops.take_along_axis(logits, labels[..., None], axis=-1), -1)
        loss = log_normalizer - (1.0 - smoothing) * label_logit
        if smoothing:
            loss = loss - smoothing * ops.mean(logits, axis=-1)

        def gradient(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            return fused_softmax_minus_target()(probabilities, labels, upstream, smoothing)

        return loss, gradient

    return loss_with_gradient(logits)


def softmax_minus_target(probabilities, labels, upstream, smoothing):
    """`upstream * (probabilities - smoothed one-hot of labels)`, the loss's gradient."""
    vocabulary_size = probabilities.shape[-1]
    entries = ops.arange(vocabulary_size, dtype=labels.dtype)
    on_label = ops.cast(ops.equal(entries, labels[..., None]), probabilities.dtype)
    target = on_label * (1.0 - smoothing) + smoothing / vocabulary_size
    return upstream[..., None] * (probabilities - target)


@functools.cache
def fused_softmax_minus_target():
    """`softmax_minus_target` as one XLA loop on TensorFlow (compiled once per shape)."""
    if keras.backend.backend() != "tensorflow":
        return softmax_minus_target
    import tensorflow as tf  # only on this backend: the JAX benches have no TensorFlow

    return tf.function(softmax_minus_target, jit_compile=True)


@keras.saving.register_keras_serializable(package="seq2seq")
class LabelSmoothedCrossEntropy(keras.losses.Loss):
    """`label_smoothed_cross_entropy` as a Keras loss: logits against integer labels.

    Keras' `SparseCategoricalCrossentropy` has no label smoothing. Padding is excluded through
    `sample_weight`; the default reduction is the mean over real (weighted) target tokens.
    Under a tf.distribute strategy with several replicas it is the mean over the tokens of the
    whole global batch: each replica divides its weighted sum by the token count summed over
    all replicas. Keras' own reduction takes the mean over each replica's tokens and then
    averages the replicas, which weighs a replica's tokens by how many it holds, and halves the
    gradient when a batch of one example leaves the other of two replicas empty.

    Args:
        label_smoothing: e in [0, 1).
    """

    def __init__(
        self,
        label_smoothing=0.0,
        name="label_smoothed_cross_entropy",
        reduction="mean_with_sample_weight",
        **kwargs,
    ):
        super().__init__(name=name, reduction=reduction, **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing={label_smoothing}; expected 0 <= value < 1.")
        self.label_smoothing = label_smoothing

    def __call__(self, y_true, y_pred, sample_weight=None):
        replicas = _replica_context()
        if replicas is None or sample_weight is None or self.reduction != "mean_with_sample_weight":
            return super().__call__(y_true, y_pred, sample_weight)
        weight = ops.cast(sample_weight, "float32")
        tokens = replicas.all_reduce("SUM", ops.sum(weight))
        # Not scaled by 1 / replicas as Keras scales its means: the replicas' gradients are
        # summed, and these sums over their tokens add up to the global mean.
        return ops.divide_no_nan(ops.sum(self.call(y_true, y_pred) * weight), tokens)

    def call(self, y_true, y_pred):
        return label_smoothed_cross_entropy(y_true, y_pred, self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def _replica_context():
    """The tf.distribute replica context when training runs on several replicas, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf  # only on this backend: the JAX benches have no TensorFlow

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context
