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
