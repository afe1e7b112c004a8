"""Training metrics over target tokens: accuracy, and the count of tokens trained on."""

import keras
from keras import ops


def label_has_top_logit(labels, logits):
    """1.0 where the label's logit is the largest of its row, else 0.0 (shape `labels`).

    The same as `argmax(logits) == label` except on exact ties (counted right here). Keras'
    `SparseCategoricalAccuracy` takes an argmax that, on TensorFlow, first rewrites negative
    zeros over the whole `(tokens, vocabulary)` tensor: five passes against this one reduction
    and gather (`bench/training_objective.py`).
    """
    labels = ops.cast(labels, "int32")
    label_logit = ops.squeeze(ops.take_along_axis(logits, labels[..., None], axis=-1), -1)
    return ops.cast(label_logit >= ops.max(logits, axis=-1), "float32")


@keras.saving.register_keras_serializable(package="seq2seq")
class TokenAccuracy(keras.metrics.MeanMetricWrapper):
    """`label_has_top_logit` averaged over the (weighted) target tokens: the training step's
    accuracy (`seq2seq.evaluation.metrics.token_accuracy` is the NumPy one for offline use)."""

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(fn=label_has_top_logit, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="seq2seq")
class TokenCount(keras.metrics.Metric):
    """Sum of the sample weights seen: the real target tokens trained on (for tokens/s)."""

    def __init__(self, name="tokens", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable((), initializer="zeros", dtype="float32", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        if sample_weight is None:
            sample_weight = ops.ones(ops.shape(y_true), "float32")
        self.total.assign_add(ops.sum(ops.cast(sample_weight, "float32")))

    def result(self):
        return self.total
