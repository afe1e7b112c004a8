"""Token + position embedding, whose token table doubles as the output projection."""

import math

import keras
from keras import ops

from seq2seq.layers.dropout import Dropout
from seq2seq.layers.position_embedding import POSITION_EMBEDDINGS, make_position_embedding


@keras.saving.register_keras_serializable(package="seq2seq")
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Embeds token ids, scales them by `sqrt(hidden_dim)`, adds positions, applies dropout.

    Imported models may differ in two ways, each a flag: no scale (`scale_embeddings=False`)
    and a bias added to the output logits (`output_bias=True`, Marian's `ff_logit_out_b`).

    The token table is a `keras.layers.ReversibleEmbedding`, so `logits(hidden)` projects decoder
    states back onto the vocabulary: with `tie_output=True` through the transposed token table
    (tied softmax, Press & Wolf 2017), otherwise through a separate `(hidden_dim, vocabulary)`
    matrix. A model shares this whole layer between source and target to share embeddings.

    Initialisation: tokens ~ N(0, hidden_dim ** -0.5), as in Vaswani et al. and fairseq, so that
    after the sqrt(hidden_dim) scale embeddings have unit variance, comparable to the sinusoids,
    and tied logits start small. Pass `embeddings_initializer` to change it.

    Args:
        vocabulary_size: number of token ids; id 0 is padding.
        hidden_dim: embedding width (d_model).
        max_length: longest sequence; sizes the learned position table.
        position_embedding: "sinusoidal", "sinusoidal_halves" or "learned"
            (`seq2seq.layers.position_embedding`).
        dropout: dropout rate on the summed embedding.
        tie_output: project outputs through the token table.
        embeddings_initializer: initializer of the token table (default above).
        scale_embeddings: multiply token embeddings by `sqrt(hidden_dim)`.
        output_bias: `logits()` adds a learned `(vocabulary_size,)` bias (initially zero).

    Call arguments:
        token_ids: `(batch, length)` int ids.
        start_index: absolute position of `token_ids[:, 0]` (cached decoding).
        training: dropout on or off.

    Returns:
        `(batch, length, hidden_dim)` embeddings.

    Example:
    >>> embed = TokenAndPositionEmbedding(100, 16, max_length=32)
    >>> embed(np.array([[5, 6, 0]])).shape
    (1, 3, 16)
    """

    def __init__(
        self,
        vocabulary_size,
        hidden_dim,
        max_length=1024,
        position_embedding="sinusoidal",
        dropout=0.0,
        tie_output=True,
        embeddings_initializer=None,
        scale_embeddings=True,
        output_bias=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if position_embedding not in POSITION_EMBEDDINGS:
            raise ValueError(
                f"position_embedding={position_embedding!r}; expected one of "
                f"{', '.join(POSITION_EMBEDDINGS)}."
            )
        self.vocabulary_size = vocabulary_size
        self.hidden_dim = hidden_dim
        self.max_length = max_length
        self.position_embedding = position_embedding
        self.dropout = dropout
        self.tie_output = tie_output
        self.scale_embeddings = scale_embeddings
        self.output_bias = output_bias
        self.embeddings_initializer = keras.initializers.get(
            embeddings_initializer
            or keras.initializers.RandomNormal(stddev=hidden_dim**-0.5)
        )
        self.token_embedding = keras.layers.ReversibleEmbedding(
            vocabulary_size,
            hidden_dim,
            tie_weights=tie_output,
            embeddings_initializer=self.embeddings_initializer,
            # Inside a model's call Keras keeps an embedding out of autocasting, so without
            # this the tied projection would run in float32 under a mixed policy in training
            # (and in the compute dtype in cached decoding): the model's largest matmul (a
            # quarter of the "small" model's training FLOPs at 8000 pieces) at a fraction of
            # the bfloat16 speed. As in flax's WMT example, it runs in the compute dtype;
            # `logits` then casts to float32 for the softmax and the loss.
            reverse_dtype=self.compute_dtype,
            dtype=self.dtype_policy,
            name="token_embedding",
        )
        self.position = make_position_embedding(
            position_embedding,
            max_length,
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="position_embedding",
        )
        self.dropout_layer = Dropout(dropout, dtype=self.dtype_policy)
        self.logits_bias = None

    def build(self, token_ids_shape):
        self.token_embedding.build(token_ids_shape)
        self.position.build((*token_ids_shape, self.hidden_dim))
        if self.output_bias and self.logits_bias is None:  # built once, if shared by two sides
            self.logits_bias = self.add_weight(
                shape=(self.vocabulary_size,), initializer="zeros", name="logits_bias")

    def call(self, token_ids, start_index=0, training=None):
        # An int8-quantized embedding returns float32 even under a mixed policy.
        embeddings = ops.cast(self.token_embedding(token_ids), self.compute_dtype)
        if self.scale_embeddings:
            embeddings = embeddings * ops.cast(math.sqrt(self.hidden_dim), embeddings.dtype)
        embeddings = embeddings + self.position(embeddings, start_index=start_index)
        return self.dropout_layer(embeddings, training=training)

    def logits(self, hidden):
        """`(..., hidden_dim)` states -> `(..., vocabulary_size)` float32 logits (the product
        taken in the compute dtype; the bias, if any, added in float32)."""
        logits = ops.cast(self.token_embedding(hidden, reverse=True), "float32")
        if self.logits_bias is not None:
            logits = logits + ops.cast(self.logits_bias, "float32")
        return logits

    def compute_output_shape(self, token_ids_shape):
        return (*token_ids_shape, self.hidden_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "hidden_dim": self.hidden_dim,
            "max_length": self.max_length,
            "position_embedding": self.position_embedding,
            "dropout": self.dropout,
            "tie_output": self.tie_output,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            "scale_embeddings": self.scale_embeddings,
            "output_bias": self.output_bias,
        }
