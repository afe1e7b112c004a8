"""Adam whose update is TensorFlow's fused `ResourceApplyAdam` kernel.

Keras' Adam updates each variable with about eight separate element-wise ops (each a full pass
over the weights and both moments), a visible share of a CPU training step
(`bench/train_throughput.py`).
TensorFlow's `ResourceApplyAdam` does the same update (same formula: bias-corrected step size,
epsilon added to sqrt(v)) in one pass. Everything else (schedules, clipping, gradient
accumulation, loss scaling, weight decay in AdamW) stays Keras'.

They also keep the global norm of the last applied gradients (before clipping; after loss
scaling is undone and accumulated gradients are averaged) in `gradient_norm`, which Keras'
optimizers do not expose, for the progress line and TensorBoard.

Under tf.distribute they sum the replicas' gradients before clipping, not after: Keras' TensorFlow
optimizer clips each replica's share of the gradient by its own norm and then sums, so with two
replicas a step could move up to twice `global_clipnorm`, in another direction than one device's
(tests/training/test_distribution.py compares the two).
"""

import keras
import tensorflow as tf


def _handle(variable):
    return variable.handle  # Keras' TensorFlow-backend variables expose their resource handle


class _Untracked:
    """A plain holder: what it holds stays out of the optimizer's checkpointed variables, so
    checkpoints written before `gradient_norm` existed still restore exactly."""


def _sum_over_replicas(grads):
    """The replicas' gradients summed, as Keras' `_all_reduce_sum_gradients` sums them (None
    entries kept); unchanged outside a replica context."""
    context = tf.distribute.get_replica_context()
    present = [g for g in grads if g is not None]
    if context is None or not present:
        return grads
    summed = iter(context.all_reduce(tf.distribute.ReduceOp.SUM, present))
    return [None if g is None else next(summed) for g in grads]


class FusedAdamMixin:
    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._untracked = _Untracked()
        self._untracked.gradient_norm = tf.Variable(
            0.0, trainable=False, name="gradient_norm",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )

    @property
    def gradient_norm(self):
        """float32 scalar variable: the global norm of the last applied gradients."""
        return self._untracked.gradient_norm

    def _clip_gradients(self, grads):
        # Keras calls this right before `_backend_update_step`, whose all-reduce is ours now.
        grads = _sum_over_replicas(grads)
        norm = tf.linalg.global_norm(grads)  # None entries ignored
        self.gradient_norm.assign(tf.cast(norm, tf.float32))
        if self.clipnorm or not self.global_clipnorm:
            return super()._clip_gradients(grads)
        # Keras' clip_by_global_norm, reusing the norm above instead of a second pass over the
        # gradients: scale by clip / max(norm, clip); a non-finite norm makes the scale NaN.
        clip = self.global_clipnorm
        scale = clip * tf.minimum(1.0 / norm, 1.0 / clip) + (norm - norm)
        return [g * scale if g is not None else g for g in grads]

    def _all_reduce_sum_gradients(self, grads_and_vars):
        return list(grads_and_vars)  # summed in `_clip_gradients` already

    def update_step(self, gradient, variable, learning_rate):
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]),
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
            use_locking=False,
        )


@keras.saving.register_keras_serializable(package="seq2seq")
class FusedAdam(FusedAdamMixin, keras.optimizers.Adam):
    """`keras.optimizers.Adam` (without amsgrad) with the fused TensorFlow update."""

    def __init__(self, *args, amsgrad=False, **kwargs):
        if amsgrad:
            raise ValueError("FusedAdam has no amsgrad; use keras.optimizers.Adam.")
        super().__init__(*args, **kwargs)


@keras.saving.register_keras_serializable(package="seq2seq")
class FusedAdamW(FusedAdamMixin, keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` with the fused TensorFlow update (decay applied by Keras)."""
