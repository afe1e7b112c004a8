"""Label-smoothed cross-entropy over sparse labels."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="seq2seq")
class LabelSmoothedCrossEntropy(keras.losses.Loss):
    """Cross-entropy from logits against integer labels, with label smoothing.

    Keras' `SparseCategoricalCrossentropy` has no label smoothing and its
    `CategoricalCrossentropy` needs one-hot labels (a `(tokens, vocabulary)` float tensor per
    batch); this computes the smoothed loss from the log-softmax directly:
    `(1 - e) * -log p(y) + e * mean_v(-log p(v))` (the uniform share spread over the whole
    vocabulary, as in Szegedy et al. and fairseq). Padding is excluded through `sample_weight`.

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
        # Default reduction: the mean over real (weighted) target tokens, not over padding too.
        super().__init__(name=name, reduction=reduction, **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing={label_smoothing}; expected 0 <= value < 1.")
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        labels = ops.expand_dims(ops.cast(y_true, "int32"), -1)
        nll = -ops.squeeze(ops.take_along_axis(log_probs, labels, axis=-1), -1)
        if not self.label_smoothing:
            return nll
        uniform = -ops.mean(log_probs, axis=-1)
        return (1.0 - self.label_smoothing) * nll + self.label_smoothing * uniform

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
