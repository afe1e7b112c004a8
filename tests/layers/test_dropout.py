"""Dropout with 16 random bits per element: what it keeps, how it scales, its gradient."""

import numpy as np
import pytest
import tensorflow as tf

from seq2seq.layers import Dropout

# Rate 0.1 rounded to 16 bits: elements whose bits fall below 6554 are dropped.
THRESHOLD = round(0.1 * 2**16)
KEEP = 1 - THRESHOLD / 2**16
SCALE = np.float32(2**16 / (2**16 - THRESHOLD))


def _output_and_gradient(layer, x, upstream):
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
    return np.asarray(y), np.asarray(tape.gradient(y, x, output_gradients=upstream))


@pytest.mark.parametrize("shape", [(64, 40, 256), (3, 5, 7)], ids=["even_last_axis", "odd"])
def test_keeps_each_element_with_the_rounded_probability_scaled_to_keep_the_mean(shape):
    rng = np.random.default_rng(0)
    x = rng.uniform(1.0, 2.0, size=shape).astype("float32")  # no zeros: zero means dropped
    upstream = rng.normal(size=shape).astype("float32")
    y, gradient = _output_and_gradient(Dropout(0.1, seed=1), x, upstream)

    kept = y != 0
    n = x.size
    assert abs(kept.mean() - KEEP) <= 5 * np.sqrt(KEEP * (1 - KEEP) / n)
    np.testing.assert_array_equal(y[kept], x[kept] * SCALE)
    # The gradient is the upstream through the same scaled mask.
    np.testing.assert_array_equal(gradient, np.where(kept, upstream * SCALE, 0.0))


def test_inference_and_rate_zero_pass_the_inputs_through():
    x = np.arange(24, dtype="float32").reshape(2, 3, 4)
    np.testing.assert_array_equal(np.asarray(Dropout(0.1)(x, training=False)), x)
    np.testing.assert_array_equal(np.asarray(Dropout(0.0)(x, training=True)), x)


def test_each_call_draws_a_new_mask_and_a_seed_repeats_the_sequence():
    x = np.ones((8, 32), "float32")
    first, second = Dropout(0.5, seed=7), Dropout(0.5, seed=7)
    a1, a2 = np.asarray(first(x, training=True)), np.asarray(first(x, training=True))
    b1, b2 = np.asarray(second(x, training=True)), np.asarray(second(x, training=True))
    assert not np.array_equal(a1 != 0, a2 != 0)
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)


def test_xla_compiled_and_graph_calls_draw_the_same_mask():
    x = np.ones((4, 10, 16), "float32")
    graph = tf.function(Dropout(0.3, seed=11).__call__)
    compiled = tf.function(Dropout(0.3, seed=11).__call__, jit_compile=True)
    np.testing.assert_array_equal(
        np.asarray(graph(x, training=True)), np.asarray(compiled(x, training=True))
    )


def test_bfloat16_inputs_stay_bfloat16():
    x = tf.cast(np.full((16, 64), 1.5, "float32"), "bfloat16")
    y = Dropout(0.1, seed=2, dtype="mixed_bfloat16")(x, training=True)
    assert y.dtype == tf.bfloat16
    values = set(np.unique(np.asarray(tf.cast(y, "float32"))))
    assert values == {0.0, float(tf.cast(tf.cast(SCALE, "bfloat16") * tf.cast(1.5, "bfloat16"),
                                         "float32"))}


def test_a_noise_shape_runs_keras_dropout_shared_along_its_broadcast_axes():
    x = np.ones((2, 6, 16), "float32")
    y = np.asarray(Dropout(0.5, noise_shape=(2, 1, 16), seed=3)(x, training=True))
    np.testing.assert_array_equal(y, np.broadcast_to(y[:, :1], y.shape))
    assert {0.0, 2.0} == set(np.unique(y))
