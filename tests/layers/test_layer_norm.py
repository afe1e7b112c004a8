"""The one-pass LayerNormalization computes what Keras' LayerNormalization computes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq.layers import LayerNormalization


def _pair(epsilon=1e-5, **kwargs):
    """Ours and Keras' layer, configured alike."""
    return (LayerNormalization(epsilon=epsilon, **kwargs),
            keras.layers.LayerNormalization(epsilon=epsilon, **kwargs))


def _with_weights(layer, shape, gamma, beta):
    layer.build(shape)
    layer.set_weights([gamma, beta])
    return layer


def _outputs_and_gradients(layer, x, upstream):
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(tf.cast(y, "float32") * upstream)
    grads = tape.gradient(loss, [x, *layer.trainable_variables])
    return np.asarray(tf.cast(y, "float32")), [np.asarray(tf.cast(g, "float32")) for g in grads]


@pytest.mark.parametrize("offset", [0.0, 20.0], ids=["centred", "offset_20"])
def test_float32_outputs_and_gradients_match_keras(offset):
    rng = np.random.default_rng(0)
    shape = (3, 7, 64)
    x = (rng.normal(size=shape) * 3.0 + offset).astype("float32")
    upstream = rng.normal(size=shape).astype("float32")
    gamma = rng.normal(1.0, 0.1, size=64).astype("float32")
    beta = rng.normal(0.0, 0.1, size=64).astype("float32")
    ours, reference = (_with_weights(layer, shape, gamma, beta) for layer in _pair())

    y, grads = _outputs_and_gradients(ours, x, upstream)
    y_ref, grads_ref = _outputs_and_gradients(reference, x, upstream)

    np.testing.assert_allclose(y, y_ref, atol=2e-5)
    for name, g, g_ref in zip(["inputs", "gamma", "beta"], grads, grads_ref):
        np.testing.assert_allclose(g, g_ref, rtol=1e-4, atol=1e-4, err_msg=name)
    # Normalised over the last axis, before gamma and beta.
    normalised = (y - beta) / gamma
    np.testing.assert_allclose(normalised.mean(-1), 0.0, atol=1e-4)
    np.testing.assert_allclose(normalised.std(-1), 1.0, atol=1e-3)


def test_mixed_bfloat16_returns_bfloat16_within_one_rounding_of_keras():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 5, 32)).astype("float32")
    ours, reference = _pair(dtype="mixed_bfloat16")
    y = ours(tf.cast(x, "bfloat16"))
    y_ref = reference(tf.cast(x, "bfloat16"))
    assert y.dtype == tf.bfloat16
    np.testing.assert_allclose(np.asarray(tf.cast(y, "float32")),
                               np.asarray(tf.cast(y_ref, "float32")), atol=2**-6, rtol=2**-7)


def test_constant_rows_give_beta_not_nan():
    # E[x^2] - E[x]^2 can round below zero for constant rows; it is clamped.
    x = np.full((2, 3, 16), 1234.5678, "float32")
    layer = LayerNormalization(epsilon=1e-5, beta_initializer="ones")
    np.testing.assert_array_equal(np.asarray(layer(x)), np.ones_like(x))


def test_other_axes_run_keras_computation():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 4, 6)).astype("float32")
    ours, reference = _pair(axis=(1, 2))
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(reference(x)), atol=1e-6)
