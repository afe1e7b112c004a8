"""What EncoderLayer and DecoderLayer share: hyperparameters and the residual sublayer."""

import keras

from seq2seq.layers.attention import MultiHeadAttention
from seq2seq.layers.dropout import Dropout
from seq2seq.layers.feed_forward import FeedForward
from seq2seq.layers.layer_norm import LayerNormalization


class TransformerBlock(keras.layers.Layer):
    """Base of `EncoderLayer` and `DecoderLayer`.

    Each sublayer (attention or feed-forward) is wrapped as
    `x + dropout(f(norm(x)))` with `norm_first=True` (pre-norm, stable without long warmup) or
    `norm(x + dropout(f(x)))` with `norm_first=False` (post-norm, Vaswani et al.).

    Args:
        num_heads: attention heads; `hidden_dim` (read from the input) must be divisible by it.
        intermediate_dim: feed-forward width.
        dropout: residual dropout rate (on each sublayer's output).
        attention_dropout: dropout rate on attention probabilities.
        activation_dropout: dropout rate inside the feed-forward block.
        activation: feed-forward activation.
        norm_first: pre-norm (True) or post-norm (False).
        layer_norm_epsilon: epsilon of every LayerNormalization.
        kernel_initializer: initializer of every projection kernel (default Glorot-uniform).
    """

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        activation="relu",
        norm_first=True,
        layer_norm_epsilon=1e-5,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.activation_dropout = activation_dropout
        self.activation = activation
        self.norm_first = norm_first
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _head_dim(self, hidden_dim):
        if hidden_dim % self.num_heads:
            raise ValueError(
                f"{type(self).__name__} {self.name!r}: hidden size {hidden_dim} is not divisible "
                f"by num_heads={self.num_heads}."
            )
        return hidden_dim // self.num_heads

    def _layer_norm(self, name, shape):
        norm = LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name=name
        )
        norm.build(shape)
        return norm

    def _attention(self, name, query_shape, value_shape=None, self_attention=False):
        """A built `MultiHeadAttention` and its LayerNormalization."""
        attention = MultiHeadAttention(
            self.num_heads,
            self._head_dim(query_shape[-1]),
            dropout=self.attention_dropout,
            kernel_initializer=self.kernel_initializer,
            self_attention=self_attention,
            dtype=self.dtype_policy,
            name=name,
        )
        attention.build(query_shape, value_shape)
        return attention, self._layer_norm(f"{name}_norm", query_shape)

    def _build_feed_forward(self, shape):
        """Builds the feed-forward sublayer, its norm and the residual dropout."""
        self.feed_forward = FeedForward(
            self.intermediate_dim,
            activation=self.activation,
            dropout=self.activation_dropout,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="feed_forward",
        )
        self.feed_forward.build(shape)
        self.feed_forward_norm = self._layer_norm("feed_forward_norm", shape)
        self.dropout_layer = Dropout(self.dropout, dtype=self.dtype_policy)

    def _residual(self, inputs, norm, function, training):
        """Applies `function` as a residual sublayer; passes through a cache it returns."""
        outputs = function(norm(inputs) if self.norm_first else inputs)
        outputs, cache = outputs if isinstance(outputs, tuple) else (outputs, None)
        outputs = inputs + self.dropout_layer(outputs, training=training)
        if not self.norm_first:
            outputs = norm(outputs)
        return outputs if cache is None else (outputs, cache)

    def compute_output_shape(self, inputs_shape, *args, **kwargs):
        return inputs_shape

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "dropout": self.dropout,
            "attention_dropout": self.attention_dropout,
            "activation_dropout": self.activation_dropout,
            "activation": self.activation,
            "norm_first": self.norm_first,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
