"""The one test harness every layer goes through (after keras-hub's `run_layer_test`)."""

import json

import keras
import numpy as np


def _symbolic(name, array):
    return keras.Input(
        shape=array.shape[1:], batch_size=array.shape[0], dtype=array.dtype.name, name=name
    )


def run_layer_test(
    layer_cls,
    init_kwargs,
    call_inputs,
    build_shapes,
    expected_output_shape,
    expected_num_trainable_weights,
    expected_num_params,
    weights_unused_by_call=(),
):
    """Checks one layer end to end on tiny shapes.

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments.
        call_inputs: dict of call argument name -> numpy array (batch first).
        build_shapes: dict of `build()` argument name -> shape.
        expected_output_shape: shape of the eager output.
        expected_num_trainable_weights: number of trainable variables after build.
        expected_num_params: number of scalar parameters after build.
        weights_unused_by_call: names of weights that `call` does not read (so do not train).
    """
    # Config round trip.
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    assert layer_cls.from_config(config).get_config() == config

    # JSON serialization round trip through the registered name.
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == f"seq2seq>{layer_cls.__name__}"
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
    assert type(restored) is layer_cls
    assert restored.get_config() == config

    # Build.
    layer.build(**build_shapes)
    assert len(layer.trainable_weights) == expected_num_trainable_weights
    assert layer.count_params() == expected_num_params

    # Symbolic call.
    symbolic = {name: _symbolic(name, array) for name, array in call_inputs.items()}
    symbolic_layer = layer_cls(**init_kwargs)
    symbolic_output = symbolic_layer(**symbolic)
    assert tuple(symbolic_output.shape) == tuple(expected_output_shape)

    # Eager call, deterministic in inference.
    output = np.asarray(layer(**call_inputs))
    assert output.shape == tuple(expected_output_shape)
    assert np.all(np.isfinite(output))
    np.testing.assert_array_equal(output, np.asarray(layer(**call_inputs)))

    # One fit step moves every trainable weight.
    model = keras.Model(list(symbolic.values()), symbolic_output)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    before = [np.array(w) for w in model.trainable_weights]
    target = np.random.default_rng(0).normal(size=expected_output_shape).astype("float32")
    inputs = [call_inputs[name] for name in symbolic]
    history = model.fit(inputs, target, batch_size=expected_output_shape[0], epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    for variable, old in zip(model.trainable_weights, before):
        if variable.name in weights_unused_by_call:
            np.testing.assert_array_equal(np.array(variable), old)
            continue
        assert not np.allclose(np.array(variable), old), f"{variable.path} did not train"
    return layer
