import numpy as np
import pytest

from seq2seq.layers import MultiHeadAttention, masking

rng = np.random.default_rng(0)


def reference_attention(layer, query, value, mask):
    """Attention written out in numpy from the layer's own weights."""
    (wq, bq), (wkv, bkv), (wo, bo) = (
        [np.asarray(w) for w in dense.weights]
        for dense in (layer.query_dense, layer.key_value_dense, layer.output_dense)
    )
    heads, dim = layer.num_heads, layer.head_dim
    q = (query @ wq + bq).reshape(*query.shape[:2], heads, dim)
    kv = (value @ wkv + bkv).reshape(*value.shape[:2], 2, heads, dim)
    k, v = kv[:, :, 0], kv[:, :, 1]
    scores = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(dim)
    scores = np.where(mask[:, None], scores, -1e9)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = np.einsum("bhqk,bkhd->bqhd", weights, v).reshape(*query.shape[:2], heads * dim)
    return out @ wo + bo


def test_attention_equals_a_numpy_reference():
    layer = MultiHeadAttention(num_heads=2, head_dim=4)
    query = rng.normal(size=(2, 3, 8)).astype("float32")
    value = rng.normal(size=(2, 5, 8)).astype("float32")
    key_mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], bool)
    mask = np.asarray(masking.cross_attention_mask(key_mask, 3))
    out = np.asarray(layer(query, value, attention_mask=mask))
    np.testing.assert_allclose(out, reference_attention(layer, query, value, mask), atol=1e-5)


def test_cache_is_updated_in_place_and_keeps_its_shape():
    layer = MultiHeadAttention(num_heads=2, head_dim=4, self_attention=True)
    sequence = rng.normal(size=(2, 4, 8)).astype("float32")
    layer.build(sequence.shape)
    cache = np.zeros((2, 2, 2, 6, 4), "float32")  # (batch, keys/values, heads, length, head_dim)
    for index in range(4):
        step = sequence[:, index : index + 1]
        mask = masking.causal_mask(1, 6, offset=index)
        _, cache = layer(step, attention_mask=mask, cache=cache, cache_update_index=index)
        assert tuple(cache.shape) == (2, 2, 2, 6, 4)
    expected = np.asarray(layer.compute_key_value(sequence))
    np.testing.assert_allclose(np.asarray(cache)[:, :, :, :4], expected, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(cache)[:, :, :, 4:], 0.0)


def test_precomputed_cache_is_read_as_is():
    layer = MultiHeadAttention(num_heads=2, head_dim=4)
    query = rng.normal(size=(2, 1, 8)).astype("float32")
    value = rng.normal(size=(2, 5, 8)).astype("float32")
    direct = np.asarray(layer(query, value))
    cache = layer.compute_key_value(value)
    cached, returned = layer(query, cache=cache)
    np.testing.assert_allclose(np.asarray(cached), direct, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(returned), np.asarray(cache))


def test_fused_self_attention_equals_cross_attention_over_itself():
    layer = MultiHeadAttention(num_heads=2, head_dim=4, self_attention=True)
    sequence = rng.normal(size=(2, 5, 8)).astype("float32")
    layer.build(sequence.shape)
    cross = MultiHeadAttention(num_heads=2, head_dim=4)
    cross.build(sequence.shape, sequence.shape)
    kernel, bias = (np.asarray(w) for w in layer.query_key_value_dense.weights)
    cross.query_dense.set_weights([kernel[:, :8], bias[:8]])
    cross.key_value_dense.set_weights([kernel[:, 8:], bias[8:]])
    cross.output_dense.set_weights(layer.output_dense.get_weights())
    mask = np.asarray(masking.causal_mask(5, 5))
    np.testing.assert_allclose(
        np.asarray(layer(sequence, attention_mask=mask)),
        np.asarray(cross(sequence, sequence, attention_mask=mask)),
        atol=1e-6,
    )


def test_causal_mask_with_offset():
    mask = np.asarray(masking.causal_mask(2, 5, offset=2))
    np.testing.assert_array_equal(
        mask[0], [[True, True, True, False, False], [True, True, True, True, False]]
    )


def test_fully_masked_row_is_uniform_not_nan():
    probabilities = masking.masked_softmax(np.ones((1, 1, 1, 3)), np.zeros((1, 1, 3), bool))
    np.testing.assert_allclose(np.asarray(probabilities), np.full((1, 1, 1, 3), 1 / 3))


def test_heads_must_divide_hidden_size():
    from seq2seq.layers import EncoderLayer

    with pytest.raises(ValueError, match="hidden size 10 is not divisible by num_heads=4"):
        EncoderLayer(num_heads=4, intermediate_dim=8).build((1, 3, 10))
