"""Label-smoothed cross-entropy over sparse labels."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="seq2seq")
class LabelSmoothedCrossEntropy(keras.losses.Loss):
    """Cross-entropy from logits against integer labels, with label smoothing.

    Keras' `SparseCategoricalCrossentropy` has no label smoothing. The smoothed target puts
    `1 - e + e / V` on the label and `e / V` on every other entry of the vocabulary (the uniform
    share spread over the whole vocabulary, as in Szegedy et al. and fairseq), so the loss is
    `(1 - e) * -log p(y) + e * mean_v(-log p(v))`. It is computed by the backend's fused
    softmax cross-entropy (`tf.nn.softmax_cross_entropy_with_logits` on TensorFlow), which
    produces the gradient `softmax - target` in the same pass: on the CPU that is a third
    cheaper than a log-softmax followed by a gather, whose gradient scatters into a dense
    `(tokens, vocabulary)` buffer. Without smoothing the sparse fused op is used. Padding is
    excluded through `sample_weight`.

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
        logits = ops.cast(y_pred, "float32")
        labels = ops.cast(y_true, "int32")
        if not self.label_smoothing:
            return ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        vocabulary_size = ops.shape(logits)[-1]
        uniform = self.label_smoothing / ops.cast(vocabulary_size, "float32")
        targets = ops.one_hot(labels, vocabulary_size) * (1.0 - self.label_smoothing) + uniform
        return ops.categorical_crossentropy(targets, logits, from_logits=True)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
