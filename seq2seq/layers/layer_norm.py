"""Layer normalization in fewer passes: a one-pass variance and a written-out gradient.

Keras' `LayerNormalization` first takes the mean, then the mean of the squared deviations
from it. Here the variance is computed as E[x^2] - E[x]^2, so both statistics are reductions
over the input itself. This is Flax's `LayerNorm(use_fast_variance=True)`, its default. The
result has fewer element-wise passes: the two reductions can share one pass (XLA can fuse
them), and a TensorFlow graph runs fewer ops: the "base" training step on a GPU got faster
(`bench/mfu.py`; docs/benchmarks.md).

The price is cancellation when |mean| is large against the spread (float32 keeps about 7
digits of E[x^2]). The variance is therefore clamped at zero. Transformer activations stay far
from that regime: the outputs agree with Keras' layer to float32 rounding in the tests.

The gradient is written out (`ops.custom_gradient`) from the normalised input `n` that the
forward pass keeps: with `g = upstream * gamma`,
`d inputs = rstd * (g - mean(g) - n * mean(g * n))`, `d gamma = sum(upstream * n)`,
`d beta = sum(upstream)`. Differentiating the forward ops instead builds about twenty ops
per norm in a TensorFlow graph (the broadcasts of the means come back as `Tile`s, the
subtractions as `Neg`s); this is eleven, and the CPU training step is faster for it
(`bench/train_throughput.py`). Under XLA (JAX, or `jit_compile`) the written-out gradient is compiled
like any other ops; its effect there was not measured.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="seq2seq")
class LayerNormalization(keras.layers.LayerNormalization):
    """`keras.layers.LayerNormalization` (same arguments, weights and config), with a
    one-pass variance over the last axis and its gradient written out. Any other setup (other
    axes, `rms_scaling`, no `scale` or no `center`) runs Keras' own computation.

    Computes in float32 whatever the input dtype, as Keras does, and returns the layer's
    compute dtype.
    """

    def call(self, inputs):
        # `build` has made `axis` a sorted list.
        last_axis_only = self.axis in ([-1], [len(inputs.shape) - 1])
        if self.rms_scaling or not (last_axis_only and self.scale and self.center):
            return super().call(inputs)
        outputs = normalize(
            ops.cast(inputs, "float32"),
            ops.cast(self.gamma, "float32"),
            ops.cast(self.beta, "float32"),
            self.epsilon,
        )
        return ops.cast(outputs, self.compute_dtype)


def normalize(x, gamma, beta, epsilon):
    """`gamma * (x - mean) / sqrt(variance + epsilon) + beta` over the last axis of float32
    `x`, with the gradient of the module docstring."""

    @ops.custom_gradient
    def forward(x, gamma, beta):
        mean = ops.mean(x, axis=-1, keepdims=True)
        variance = ops.maximum(
            ops.mean(ops.square(x), axis=-1, keepdims=True) - ops.square(mean), 0.0
        )
        rstd = ops.rsqrt(variance + epsilon)
        normalised = (x - mean) * rstd

        def gradient(*args, upstream=None):
            if upstream is None:  # TensorFlow passes it positionally, JAX by keyword
                (upstream,) = args
            outer_axes = tuple(range(len(x.shape) - 1))
            upstream_normalised = upstream * normalised
            d_gamma = ops.sum(upstream_normalised, axis=outer_axes)
            d_beta = ops.sum(upstream, axis=outer_axes)
            g = upstream * gamma
            # mean(g * n) = mean(upstream * n * gamma): reuses the product above.
            mean_g_n = ops.mean(upstream_normalised * gamma, axis=-1, keepdims=True)
            mean_g = ops.mean(g, axis=-1, keepdims=True)
            d_x = (g - mean_g - normalised * mean_g_n) * rstd
            return d_x, d_gamma, d_beta

        return normalised * gamma + beta, gradient

    return forward(x, gamma, beta)
