"""The fused Adam equals Keras' Adam step for step."""

import keras
import numpy as np
import pytest

from seq2seq.training.optimizers import FusedAdam, FusedAdamW


@pytest.mark.parametrize("fused, reference", [
    (lambda: FusedAdam(1e-2, beta_2=0.98, epsilon=1e-7, global_clipnorm=1.0),
     lambda: keras.optimizers.Adam(1e-2, beta_2=0.98, epsilon=1e-7, global_clipnorm=1.0)),
    (lambda: FusedAdamW(1e-2, weight_decay=0.1),
     lambda: keras.optimizers.AdamW(1e-2, weight_decay=0.1)),
])
def test_fused_adam_matches_keras_adam(fused, reference):
    rng = np.random.default_rng(0)
    start = rng.normal(size=(4, 3)).astype("float32")
    results = []
    for make in (fused, reference):
        variable = keras.Variable(start)
        optimizer = make()
        for step in range(5):
            gradient = rng.normal(size=(4, 3)).astype("float32") * (step + 1)
            optimizer.apply_gradients([(keras.ops.convert_to_tensor(gradient), variable)])
        results.append(np.asarray(variable))
        rng = np.random.default_rng(0)
        rng.normal(size=(4, 3))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(results[0], start)


@pytest.mark.parametrize("wrap", [False, True], ids=["plain", "loss_scaled"])
def test_gradient_norm_is_the_global_norm_before_clipping(wrap):
    variables = [keras.Variable(np.zeros((4, 3), "float32")), keras.Variable(np.zeros(5, "float32"))]
    optimizer = FusedAdam(1e-2, global_clipnorm=1.0)
    if wrap:  # mixed_float16 training: the loss-scale wrapper unscales before the inner optimizer
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=128.0)
    rng = np.random.default_rng(1)
    for _ in range(2):
        gradients = [rng.normal(size=v.shape).astype("float32") * 3 for v in variables]
        scale = 128.0 if wrap else 1.0
        optimizer.apply_gradients(
            [(keras.ops.convert_to_tensor(g * scale), v) for g, v in zip(gradients, variables)])
    expected = np.sqrt(sum((g.astype("float64") ** 2).sum() for g in gradients))
    assert expected > 1.0  # the update itself was clipped; the reported norm is not
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    np.testing.assert_allclose(float(inner.gradient_norm), expected, rtol=1e-5)


def test_gradient_norm_stays_out_of_the_checkpointed_state():
    # Checkpoints written before the optimizer kept a gradient norm must still restore exactly.
    variable = keras.Variable(np.zeros(3, "float32"))
    fused, reference = FusedAdam(1e-2), keras.optimizers.Adam(1e-2)
    for optimizer in (fused, reference):
        optimizer.build([variable])
    assert [v.path.split("/", 1)[1] for v in fused.variables] == \
        [v.path.split("/", 1)[1] for v in reference.variables]
