"""Dropout that draws 16 random bits per element on TensorFlow.

Keras' TensorFlow dropout (`tf.nn.experimental.stateless_dropout`) draws one float32 uniform
per element, a 32-bit Philox output turned into a float, and then compares, multiplies and
selects; its gradient selects and multiplies again. Here one 32-bit Philox output serves two
elements (16 bits each), the comparison gives a mask already scaled, and the gradient is one
multiply by that mask (written out): with the layer norm's written-out gradient, the
"small" model's CPU training step ran measurably faster (`bench/train_throughput.py`). The rate is rounded to a multiple of 2^-16 (0.1 becomes 0.100006);
kept elements are scaled by the inverse of the rounded keep probability, so the expectation
is exact up to the rounding of that scale in the compute dtype.

The Philox algorithm is named rather than left to `auto_select`, which under XLA on a CPU
picks ThreeFry, compiled there to a kernel many times slower than Philox's. XLA-compiled and
graph steps then also draw the same masks.

On other backends (JAX compiles the whole step, where XLA fuses Keras' dropout) and with a
`noise_shape`, Keras' own dropout runs.
"""

import keras

_BITS = 16


@keras.saving.register_keras_serializable(package="seq2seq")
class Dropout(keras.layers.Dropout):
    """`keras.layers.Dropout` (same arguments and config), with 16 random bits per element
    on the TensorFlow backend."""

    def call(self, inputs, training=False):
        threshold = round(self.rate * 2**_BITS)  # dropped where the bits fall below it
        if (
            not training
            or self.rate == 0
            or threshold >= 2**_BITS
            or self.noise_shape is not None
            or keras.backend.backend() != "tensorflow"
        ):
            return super().call(inputs, training=training)
        return _dropout_16_bits(inputs, threshold, self.seed_generator.next())


def _dropout_16_bits(x, threshold, seed):
    """`x` with elements zeroed where 16 random bits are below `threshold`, the others
    scaled by `2^16 / (2^16 - threshold)`."""
    import tensorflow as tf  # only on this backend

    # As Keras does: its seed state is int64, the stateless ops take int32 under XLA.
    seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
    shape = tf.shape(x)
    if x.shape[-1] is not None and x.shape[-1] % 2 == 0:
        # Two 16-bit halves of each word land side by side on the last axis.
        words_shape = tf.concat([shape[:-1], [x.shape[-1] // 2]], 0)
        size = None
    else:
        size = tf.size(x)
        words_shape = [(size + 1) // 2]
    words = tf.random.stateless_uniform(
        words_shape, seed, minval=None, maxval=None, dtype=tf.uint32, alg="philox"
    )
    bits = tf.bitcast(words, tf.uint16)
    if size is not None:
        bits = tf.reshape(bits, [-1])[:size]
    bits = tf.reshape(bits, shape)
    scale = tf.constant(2**_BITS / (2**_BITS - threshold), x.dtype)
    mask = tf.where(bits >= threshold, scale, tf.zeros([], x.dtype))

    @tf.custom_gradient
    def apply(x):
        return x * mask, lambda upstream: upstream * mask

    return apply(x)
