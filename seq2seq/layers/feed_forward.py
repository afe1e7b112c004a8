"""Position-wise feed-forward block."""

import keras

from seq2seq.layers.dropout import Dropout


@keras.saving.register_keras_serializable(package="seq2seq")
class FeedForward(keras.layers.Layer):
    """`Dense(intermediate_dim, activation) -> Dropout -> Dense(hidden)`.

    Initialisation: both kernels use `kernel_initializer` (default Glorot-uniform), biases zero.

    Args:
        intermediate_dim: width of the hidden layer (d_ff).
        activation: activation of the hidden layer, e.g. "relu" or "gelu".
        dropout: dropout rate after the activation.
        kernel_initializer: initializer of the two kernels.

    Call arguments:
        inputs: `(batch, length, hidden)`.
        training: dropout on or off.

    Returns:
        `(batch, length, hidden)`.
    """

    def __init__(
        self,
        intermediate_dim,
        activation="relu",
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.intermediate_dim = intermediate_dim
        self.activation = keras.activations.get(activation)
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, inputs_shape):
        dense = dict(kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy)
        self.intermediate_dense = keras.layers.Dense(
            self.intermediate_dim, activation=self.activation, name="intermediate", **dense
        )
        self.intermediate_dense.build(inputs_shape)
        self.output_dense = keras.layers.Dense(inputs_shape[-1], name="output", **dense)
        self.output_dense.build((*inputs_shape[:-1], self.intermediate_dim))
        self.dropout_layer = Dropout(self.dropout, dtype=self.dtype_policy)

    def call(self, inputs, training=None):
        hidden = self.dropout_layer(self.intermediate_dense(inputs), training=training)
        return self.output_dense(hidden)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        return {
            **super().get_config(),
            "intermediate_dim": self.intermediate_dim,
            "activation": keras.activations.serialize(self.activation),
            "dropout": self.dropout,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
