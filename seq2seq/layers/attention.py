"""Multi-head attention with a fixed-shape key/value cache, updated in place.

keras-hub's `CachedMultiHeadAttention` has the cache semantics we want but projects queries,
keys and values with three separate `EinsumDense` layers, whose kernel gradients run as batched
matmuls plus a reduction. Here self-attention projects queries, keys and values with one fused
`(hidden, 3 * heads * head_dim)` Dense and cross-attention keys and values with one
`(hidden, 2 * heads * head_dim)` Dense: fewer, larger plain GEMMs (it matters on CPU, where
these small matmuls dominate a step). The fused outputs are split with `ops.split` (whose
gradient is a cheap concat) rather than sliced (a strided-slice gradient is a large share of
a CPU training step: `bench/train_throughput.py`). The cross-attention cache is computed once per source by the same projection
that training uses (`compute_key_value`).

Keys, values and queries are laid out heads first, `(batch, heads, length, head_dim)`, as is
the cache: both attention products are then plain batched matmuls over `(batch, heads)`. In
the `(batch, length, heads, head_dim)` layout of keras-hub, TensorFlow's einsum transposes
each operand of both products (and of their gradients) on every call; here one transpose
moves the fused projection's output into place and one moves the attention output back, and
a decoding step does not transpose the whole cache of every layer (`bench/decode.py`).
"""

import keras
from keras import ops

from seq2seq.layers import masking
from seq2seq.layers.dropout import Dropout


@keras.saving.register_keras_serializable(package="seq2seq")
class MultiHeadAttention(keras.layers.Layer):
    """Scaled dot-product attention over `num_heads` heads, with an optional cache.

    Initialisation: projections use `kernel_initializer` (default Glorot-uniform, as in
    tensor2tensor and the Keras attention layers) and zero biases.

    Args:
        num_heads: number of attention heads.
        head_dim: size of each head's queries, keys and values.
        dropout: dropout rate on the attention probabilities.
        kernel_initializer: initializer of the projection kernels.
        self_attention: queries, keys and values all come from `query` (one fused projection);
            otherwise keys and values come from `value` (cross-attention).

    Call arguments:
        query: `(batch, query_length, hidden)`.
        value: `(batch, key_length, hidden)` the attended sequence; defaults to `query`
            (self-attention). Unused when `cache` is given without `cache_update_index`.
        attention_mask: `(batch or 1, query_length, key_length)` bool, True where attention is
            allowed (with a source cache: one row per source).
        cache: `(batch, 2, num_heads, cache_length, head_dim)` keys and values. With
            `cache_update_index`, the keys/values of `value` are written into it at that
            position and attention runs over the whole cache (self-attention while decoding);
            without, it is read as is (cross-attention over a precomputed source), and may
            hold fewer rows than `query`: `sources` rows serve `sources * groups` query rows,
            each source's `groups` rows next to one another (the hypotheses of a beam).
        cache_update_index: int or scalar tensor, the position of `query[:, 0]`.
        training: dropout on or off.
        return_attention_scores: also return the attention probabilities
            `(batch, heads, query_length, key_length)` (without a cache only).

    Returns:
        `(batch, query_length, hidden)`, or `(outputs, cache)` when a cache is passed, or
        `(outputs, probabilities)` with `return_attention_scores`.
    """

    def __init__(
        self,
        num_heads,
        head_dim,
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        self_attention=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.self_attention = self_attention

    def build(self, query_shape, value_shape=None):
        hidden_dim = query_shape[-1]
        width = self.num_heads * self.head_dim
        dense = dict(kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy)
        if self.self_attention:
            self.query_key_value_dense = keras.layers.Dense(
                3 * width, name="query_key_value", **dense
            )
            self.query_key_value_dense.build(query_shape)
        else:
            self.query_dense = keras.layers.Dense(width, name="query", **dense)
            self.query_dense.build(query_shape)
            self.key_value_dense = keras.layers.Dense(2 * width, name="key_value", **dense)
            self.key_value_dense.build(value_shape or query_shape)
        self.output_dense = keras.layers.Dense(hidden_dim, name="output", **dense)
        self.output_dense.build((*query_shape[:-1], width))
        self.dropout_layer = Dropout(self.dropout, dtype=self.dtype_policy)

    def _heads(self, x, parts=1):
        """`(batch, length, parts * heads * head_dim)` -> `(batch, parts, heads, length,
        head_dim)` in one transpose."""
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        x = ops.reshape(x, (batch, length, parts, self.num_heads, self.head_dim))
        return ops.transpose(x, (0, 2, 3, 1, 4))

    def _split_heads(self, x, parts):
        """`(batch, length, parts * heads * head_dim)` -> `parts` tensors `(batch, heads,
        length, head_dim)`."""
        return [ops.squeeze(part, 1) for part in ops.split(self._heads(x, parts), parts, 1)]

    def _query_heads(self, query):
        """Cross-attention queries `(batch, heads, length, head_dim)`."""
        return ops.squeeze(self._heads(self.query_dense(query)), 1)

    def _project(self, query, value):
        """Queries, keys and values, each `(batch, heads, length, head_dim)`."""
        if self.self_attention:
            return self._split_heads(self.query_key_value_dense(query), 3)
        keys, values = self._split_heads(self.key_value_dense(query if value is None else value), 2)
        return self._query_heads(query), keys, values

    def compute_key_value(self, value):
        """`(batch, length, hidden)` -> keys and values `(batch, 2, heads, length, head_dim)`.

        The layout of a cache entry; for cross-attention this is the cache itself.
        """
        if self.self_attention:
            return self._heads(self.query_key_value_dense(value), 3)[:, 1:]
        return self._heads(self.key_value_dense(value), 2)

    def call(
        self,
        query,
        value=None,
        attention_mask=None,
        cache=None,
        cache_update_index=None,
        training=None,
        return_attention_scores=False,
    ):
        groups = None
        if cache is not None and cache_update_index is None:
            # Cross-attention over a precomputed source: only the queries are projected. The
            # cache may hold one row per `groups` query rows (a sentence's hypotheses): they
            # are folded into the query axis, so its keys and values are never copied.
            query, key, value = self._query_heads(query), cache[:, 0], cache[:, 1]
            groups = ops.shape(query)[0] // ops.shape(key)[0]
            query = _fold(query, groups)
            # A key padding mask, one row per source: its first query row serves every query.
            attention_mask = None if attention_mask is None else attention_mask[:, :1]
        else:
            query, key, value = self._project(query, value)
            if cache is not None:
                entry = ops.cast(ops.stack([key, value], axis=1), cache.dtype)
                cache = ops.slice_update(cache, [0, 0, 0, cache_update_index, 0], entry)
                key, value = cache[:, 0], cache[:, 1]
        # query: (batch, heads, query_length, head_dim); key, value: (batch, heads, key_length,
        # head_dim).
        query = query * ops.cast(self.head_dim**-0.5, query.dtype)
        scores = ops.einsum("bhqd,bhkd->bhqk", query, key)
        probabilities = masking.masked_softmax(scores, attention_mask)
        probabilities = self.dropout_layer(
            ops.cast(probabilities, self.compute_dtype), training=training
        )
        outputs = ops.einsum("bhqk,bhkd->bhqd", probabilities, value)
        if groups is not None:
            outputs, probabilities = _unfold(outputs, groups), _unfold(probabilities, groups)
        batch, query_length = ops.shape(outputs)[0], ops.shape(outputs)[2]
        outputs = ops.transpose(outputs, (0, 2, 1, 3))
        outputs = ops.reshape(outputs, (batch, query_length, self.num_heads * self.head_dim))
        outputs = self.output_dense(outputs)
        if return_attention_scores:
            return outputs, probabilities
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
            "self_attention": self.self_attention,
        }


def _fold(x, groups):
    """`(sources * groups, heads, length, dim)` -> `(sources, heads, groups * length, dim)`,
    each source's `groups` rows side by side on the length axis."""
    rows, heads, length = ops.shape(x)[0], ops.shape(x)[1], ops.shape(x)[2]
    x = ops.reshape(x, (rows // groups, groups, heads, length, -1))
    return ops.reshape(ops.transpose(x, (0, 2, 1, 3, 4)), (rows // groups, heads, -1,
                                                            ops.shape(x)[-1]))


def _unfold(x, groups):
    """The inverse of `_fold`: `(sources, heads, groups * length, dim)` -> `(sources * groups,
    heads, length, dim)`."""
    sources, heads = ops.shape(x)[0], ops.shape(x)[1]
    x = ops.reshape(x, (sources, heads, groups, -1, ops.shape(x)[-1]))
    return ops.reshape(ops.transpose(x, (0, 2, 1, 3, 4)), (sources * groups, heads, -1,
                                                            ops.shape(x)[-1]))
