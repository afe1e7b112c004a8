"""Multi-head attention with a fixed-shape key/value cache, updated in place.

keras-hub's `CachedMultiHeadAttention` has the cache semantics we want but projects queries,
keys and values with three separate `EinsumDense` layers. Here keys and values come from one
fused `(hidden, 2 * heads * head_dim)` projection: one GEMM instead of two per attention block
(it matters on CPU, where these small matmuls dominate a step), and the projection's output is
exactly one cache entry, so the cross-attention cache is computed once per source by the very
function that training uses (`compute_key_value`).
"""

import keras
from keras import ops

from seq2seq.layers import masking


@keras.saving.register_keras_serializable(package="seq2seq")
class MultiHeadAttention(keras.layers.Layer):
    """Scaled dot-product attention over `num_heads` heads, with an optional cache.

    Initialisation: projections use `kernel_initializer` (default Glorot-uniform, as in
    tensor2tensor and the Keras attention layers) and zero biases.

    Args:
        num_heads: number of attention heads.
        head_dim: size of each head's queries, keys and values.
        dropout: dropout rate on the attention probabilities.
        kernel_initializer: initializer of the four projection kernels.

    Call arguments:
        query: `(batch, query_length, hidden)`.
        value: `(batch, key_length, hidden)` the attended sequence; defaults to `query`
            (self-attention). Unused when `cache` is given without `cache_update_index`.
        attention_mask: `(batch or 1, query_length, key_length)` bool, True where attention is
            allowed.
        cache: `(batch, 2, cache_length, num_heads, head_dim)` keys and values. With
            `cache_update_index`, the keys/values of `value` are written into it at that
            position and attention runs over the whole cache (self-attention while decoding);
            without, it is read as is (cross-attention over a precomputed source).
        cache_update_index: int or scalar tensor, the position of `query[:, 0]`.
        training: dropout on or off.

    Returns:
        `(batch, query_length, hidden)`, or `(outputs, cache)` when a cache is passed.
    """

    def __init__(
        self, num_heads, head_dim, dropout=0.0, kernel_initializer="glorot_uniform", **kwargs
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, query_shape, value_shape=None):
        hidden_dim = query_shape[-1]
        value_shape = value_shape or query_shape
        width = self.num_heads * self.head_dim
        dense = dict(kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy)
        self.query_dense = keras.layers.Dense(width, name="query", **dense)
        self.query_dense.build(query_shape)
        self.key_value_dense = keras.layers.Dense(2 * width, name="key_value", **dense)
        self.key_value_dense.build(value_shape)
        self.output_dense = keras.layers.Dense(hidden_dim, name="output", **dense)
        self.output_dense.build((*query_shape[:-1], width))
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)

    def compute_key_value(self, value):
        """`(batch, length, hidden)` -> keys and values `(batch, 2, length, heads, head_dim)`."""
        batch, length = ops.shape(value)[0], ops.shape(value)[1]
        key_value = self.key_value_dense(value)
        key_value = ops.reshape(key_value, (batch, length, 2, self.num_heads, self.head_dim))
        return ops.transpose(key_value, (0, 2, 1, 3, 4))

    def call(
        self,
        query,
        value=None,
        attention_mask=None,
        cache=None,
        cache_update_index=None,
        training=None,
    ):
        if cache is not None and cache_update_index is None:
            key_value = cache  # precomputed (cross-attention)
        else:
            key_value = self.compute_key_value(query if value is None else value)
            if cache is not None:
                start = [0, 0, cache_update_index, 0, 0]
                cache = ops.slice_update(cache, start, ops.cast(key_value, cache.dtype))
                key_value = cache
        key, value = key_value[:, 0], key_value[:, 1]  # (batch, key_length, heads, head_dim)

        batch, query_length = ops.shape(query)[0], ops.shape(query)[1]
        query = self.query_dense(query) * ops.cast(self.head_dim**-0.5, self.compute_dtype)
        query = ops.reshape(query, (batch, query_length, self.num_heads, self.head_dim))
        scores = ops.einsum("bqhd,bkhd->bhqk", query, key)
        probabilities = masking.masked_softmax(scores, attention_mask)
        probabilities = self.dropout_layer(
            ops.cast(probabilities, self.compute_dtype), training=training
        )
        outputs = ops.einsum("bhqk,bkhd->bqhd", probabilities, value)
        outputs = ops.reshape(outputs, (batch, query_length, self.num_heads * self.head_dim))
        outputs = self.output_dense(outputs)
        return outputs if cache is None else (outputs, cache)

    def compute_output_shape(self, query_shape, value_shape=None):
        return query_shape

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "head_dim": self.head_dim,
            "dropout": self.dropout,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
