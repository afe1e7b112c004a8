"""The Transformer: cache equivalence, padding, sizes, saving, precision and XLA."""

import keras
import numpy as np
import pytest

from seq2seq.models import SIZES, Transformer
from seq2seq.training.losses import LabelSmoothedCrossEntropy

SOURCE = np.array([[5, 6, 7, 8, 9, 10], [11, 12, 13, 0, 0, 0]], dtype="int32")
TARGET = np.array([[1, 20, 21, 22, 23], [1, 24, 25, 0, 0]], dtype="int32")
TARGET_LENGTHS = [5, 3]


def tiny(**kwargs):
    kwargs = {"source_vocabulary_size": 40, "target_vocabulary_size": 50, "dropout": 0.0, **kwargs}
    return Transformer.from_size("tiny", **kwargs)


def real(logits, lengths=TARGET_LENGTHS):
    """The logits at real (non-pad) target positions, per sequence."""
    return [np.asarray(logits)[row, :length] for row, length in enumerate(lengths)]


def assert_real_logits_close(a, b, atol=1e-5):
    for x, y in zip(real(a), real(b)):
        np.testing.assert_allclose(x, y, atol=atol)


@pytest.mark.parametrize("norm_first", [True, False], ids=["pre_norm", "post_norm"])
@pytest.mark.parametrize("position_embedding", ["sinusoidal", "learned"])
def test_cached_steps_equal_the_full_forward_pass(norm_first, position_embedding):
    model = tiny(norm_first=norm_first, position_embedding=position_embedding, max_length=16)
    full = np.asarray(model((SOURCE, TARGET)))

    cache = model.init_cache(SOURCE, max_length=8)
    prompt = np.zeros((2, 8), "int32")
    prompt[:, :5] = TARGET
    stepped = []
    for index in range(1, 6):
        logits, hidden, cache = model.next(prompt, cache, index)
        assert tuple(logits.shape) == (2, 50) and tuple(hidden.shape) == (2, 32)
        stepped.append(np.asarray(logits))
    stepped = np.stack(stepped, axis=1)
    # Row 0 has no padding: every position. Row 1: its 3 real positions.
    assert np.abs(stepped[0] - full[0]).max() <= 1e-5
    assert np.abs(stepped[1, :3] - full[1, :3]).max() <= 1e-5

    # A one-shot prefill of the same positions writes the same cache contents.
    _, _, prefilled = model.decode_with_cache(TARGET, model.init_cache(SOURCE, 8), 0)
    for step_cache, prefill_cache in zip(cache["self_attention"], prefilled["self_attention"]):
        step_cache, prefill_cache = np.asarray(step_cache), np.asarray(prefill_cache)
        assert step_cache.shape == (2, 2, 2, 8, 16)  # (batch, keys/values, heads, length, d)
        np.testing.assert_allclose(step_cache, prefill_cache, atol=1e-5)
        np.testing.assert_array_equal(step_cache[:, :, :, 5:], 0.0)


def test_cross_attention_cache_holds_the_encoder_keys_and_values():
    model = tiny()
    cache = model.init_cache(SOURCE)
    encoder_output, source_mask = model.encode(SOURCE)
    np.testing.assert_array_equal(np.asarray(cache["source_mask"]), SOURCE != 0)
    for layer, cross in zip(model.decoder_layers, cache["cross_attention"]):
        expected = layer.cross_attention.compute_key_value(encoder_output)
        np.testing.assert_allclose(np.asarray(cross), np.asarray(expected), atol=1e-6)


def test_padded_tails_never_change_real_logits():
    model = tiny()
    logits = model((SOURCE, TARGET))
    # Longer source padding.
    wider_source = np.pad(SOURCE, ((0, 0), (0, 4)))
    assert_real_logits_close(model((wider_source, TARGET)), logits)
    # Longer target padding.
    wider_target = np.pad(TARGET, ((0, 0), (0, 3)))
    assert_real_logits_close(model((SOURCE, wider_target)), logits)
    # A row decoded alone, without its longer neighbour, gives the same logits.
    alone = model((SOURCE[1:, :3], TARGET[1:, :3]))
    np.testing.assert_allclose(np.asarray(alone)[0], np.asarray(logits)[1, :3], atol=1e-5)


def test_padding_is_not_attended():
    # Replacing a padded source row with a different real sentence changes the output,
    # so the test above is not passing because the source is ignored.
    model = tiny()
    other = SOURCE.copy()
    other[1, 3:] = [30, 31, 32]
    a, b = np.asarray(model((SOURCE, TARGET))), np.asarray(model((other, TARGET)))
    assert np.abs(a[1, :3] - b[1, :3]).max() > 1e-4
    np.testing.assert_allclose(a[0], b[0], atol=1e-6)


def test_sizes_match_the_published_architectures():
    assert SIZES["base"] == dict(
        num_encoder_layers=6, num_decoder_layers=6, hidden_dim=512, num_heads=8,
        intermediate_dim=2048,
    )
    assert SIZES["big"]["hidden_dim"] == 1024 and SIZES["big"]["intermediate_dim"] == 4096
    assert SIZES["big"]["num_heads"] == 16
    with pytest.raises(ValueError, match="'huge'; expected one of tiny, small, base, big"):
        Transformer.from_size("huge", source_vocabulary_size=8, target_vocabulary_size=8)


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_parameter_count(size):
    d, f = SIZES[size]["hidden_dim"], SIZES[size]["intermediate_dim"]
    layers = SIZES[size]["num_encoder_layers"]
    attention = 4 * d * d + 4 * d
    feed_forward = 2 * d * f + d + f
    norm = 2 * d
    expected = (
        (40 + 50) * d  # token tables, tied softmax
        + layers * (attention + feed_forward + 2 * norm)
        + layers * (2 * attention + feed_forward + 3 * norm)
        + 2 * norm  # final pre-norm LayerNormalizations
    )
    model = Transformer.from_size(size, source_vocabulary_size=40, target_vocabulary_size=50)
    model((SOURCE, TARGET))
    assert model.count_params() == expected


def test_shared_embeddings_need_one_vocabulary_and_share_one_table():
    with pytest.raises(ValueError, match="source_vocabulary_size=40 and target_vocabulary_size=50"):
        tiny(share_embeddings=True)
    model = tiny(target_vocabulary_size=40, share_embeddings=True)
    model((SOURCE, TARGET))
    separate = tiny(target_vocabulary_size=40)
    separate((SOURCE, TARGET))
    assert separate.count_params() - model.count_params() == 40 * 32
    assert model.source_embedding is model.target_embedding


def test_embedding_initialisation_is_normal_with_hidden_dim_scale():
    model = Transformer.from_size("small", source_vocabulary_size=4000, target_vocabulary_size=64)
    model((SOURCE, TARGET))
    table = np.asarray(model.source_embedding.token_embedding.embeddings)
    assert abs(table.std() - 256**-0.5) < 0.002
    assert abs(table.mean()) < 0.002


def test_keras_file_round_trip(tmp_path):
    model = tiny(tie_output=False, position_embedding="learned", norm_first=False)
    expected = np.asarray(model((SOURCE, TARGET)))
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is Transformer
    np.testing.assert_array_equal(np.asarray(restored((SOURCE, TARGET))), expected)
    assert restored.get_config() == model.get_config()


def next_token_labels():
    """Labels (TARGET shifted left) and their weights, 0 at padding."""
    labels = np.concatenate([TARGET[:, 1:], np.zeros((2, 1), "int32")], axis=1)
    return labels, (labels != 0).astype("float32")


def fit_one_step(model, **compile_kwargs):
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **compile_kwargs,
    )
    labels, weights = next_token_labels()
    history = model.fit((SOURCE, TARGET), labels, sample_weight=weights, epochs=1, verbose=0)
    return history.history["loss"][0]


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_fit_step(policy):
    reference = fit_one_step(tiny())
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(1234)
    model = tiny()
    compute_dtype = policy.split("_")[1]
    assert model((SOURCE, TARGET)).dtype == "float32"
    assert model.encoder_layers[0].compute_dtype == compute_dtype
    assert model.encoder_layers[0].self_attention.query_key_value_dense.kernel.dtype == "float32"
    cache = model.init_cache(SOURCE)
    assert cache["self_attention"][0].dtype == compute_dtype
    loss = fit_one_step(model)
    # Same seed, same initial weights: the low-precision loss is the float32 loss, roughly.
    assert np.isfinite(loss) and abs(loss - reference) < 0.05 * reference
    if policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_tied_logits_multiply_in_the_compute_dtype_and_come_back_float32(policy):
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(3)
    model = tiny(source_vocabulary_size=50, share_embeddings=True)
    logits = model((SOURCE, TARGET))
    _, hidden, _ = model.decode_with_cache(TARGET, model.init_cache(SOURCE, 8), 0)
    compute_dtype = model.compute_dtype
    assert logits.dtype == "float32" and hidden.dtype == compute_dtype
    assert model.target_embedding.token_embedding.embeddings.dtype == "float32"

    # The training call's logits at real positions, against the decoder's final states there.
    logits = np.concatenate(real(logits))
    states = np.concatenate(real(keras.ops.convert_to_numpy(keras.ops.cast(hidden, "float32"))))
    table = keras.ops.convert_to_numpy(model.target_embedding.token_embedding.embeddings)
    rounded_table = keras.ops.convert_to_numpy(
        keras.ops.cast(keras.ops.cast(table, compute_dtype), "float32")
    )
    # The product came out of a compute-dtype matmul: every logit is a compute-dtype number...
    rounded_logits = keras.ops.cast(keras.ops.cast(logits, compute_dtype), "float32")
    np.testing.assert_array_equal(logits, keras.ops.convert_to_numpy(rounded_logits))
    # ...within one rounding of the exact product of the rounded inputs.
    exact = states.astype("float64") @ rounded_table.T.astype("float64")
    unit_roundoff = {"float32": 2**-23, "bfloat16": 2**-8, "float16": 2**-11}[compute_dtype]
    np.testing.assert_allclose(logits, exact, rtol=unit_roundoff, atol=1e-5)
    if policy != "float32":
        assert not np.array_equal(rounded_table, table)  # the table itself stays float32


def test_jit_compiled_fit_step_equals_the_eager_graph():
    keras.utils.set_random_seed(7)
    plain = fit_one_step(tiny(), jit_compile=False)
    keras.utils.set_random_seed(7)
    compiled = fit_one_step(tiny(), jit_compile=True)
    assert abs(plain - compiled) < 1e-4


def test_steps_with_the_label_smoothed_loss_are_the_same_with_and_without_xla():
    # The loss's gradient is an XLA function inside the step; under `jit_compile` the whole
    # step is one XLA computation around it.
    labels, weights = next_token_labels()
    results = []
    for jit_compile in (False, True):
        keras.utils.set_random_seed(0)
        model = tiny()
        model.compile(optimizer=keras.optimizers.SGD(0.5), jit_compile=jit_compile,
                      loss=LabelSmoothedCrossEntropy(0.1))
        losses = [float(model.train_on_batch((SOURCE, TARGET), labels, sample_weight=weights))
                  for _ in range(3)]
        results.append((losses, [w.numpy() for w in model.trainable_weights]))
    (graph_losses, graph_weights), (xla_losses, xla_weights) = results
    assert graph_losses[2] < graph_losses[0]  # it learns
    np.testing.assert_allclose(xla_losses, graph_losses, rtol=1e-5)
    for graph, xla in zip(graph_weights, xla_weights):
        np.testing.assert_allclose(xla, graph, atol=1e-5)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_int8_quantized_model_stays_close_to_the_float_model(policy):
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(5)
    model = tiny()
    before = np.concatenate(real(model((SOURCE, TARGET))))
    model.quantize("int8")
    kernel = model.decoder_layers[0].feed_forward.intermediate_dense._kernel
    assert kernel.dtype == "int8"
    after = np.concatenate(real(model((SOURCE, TARGET))))
    # Per-channel int8 weights and activations: logits move by about 1% of their range.
    assert np.abs(after - before).max() < 0.05 * np.abs(before).max()
    assert not np.array_equal(after, before)
