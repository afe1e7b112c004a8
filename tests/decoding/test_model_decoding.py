"""Searches driving the real Transformer: cache correctness and batch invariance."""

import keras
import numpy as np
import pytest
from keras import ops

from seq2seq.decoding import BeamSearch, GreedySearch, generate
from seq2seq.models import Transformer

SOURCE = np.array([[5, 6, 7, 8, 9, 10, 11], [12, 13, 14, 0, 0, 0, 0]], dtype="int32")


@pytest.fixture
def model():
    keras.utils.set_random_seed(3)
    return Transformer.from_size(
        "tiny", source_vocabulary_size=20, target_vocabulary_size=20, dropout=0.0, max_length=12
    )


def uncached_next(model, source):
    """The tutorial's decode step: the whole model over the whole prefix, at every step."""

    def next_fn(prompt, cache, index):
        logits = model((cache["source"], prompt))
        return ops.take(logits, index - 1, axis=1), None, cache

    return next_fn, {"source": ops.convert_to_tensor(source)}


@pytest.mark.parametrize("search", [GreedySearch(), BeamSearch(beam_size=3, alpha=0.6, n_best=2)],
                         ids=["greedy", "beam"])
def test_cached_decoding_equals_recomputing_the_prefix(model, search):
    cached = generate(model, SOURCE, search, max_length=12)
    next_fn, cache = uncached_next(model, SOURCE)
    recomputed = search(next_fn, cache, 2, 12)
    np.testing.assert_array_equal(np.asarray(cached.tokens), np.asarray(recomputed.tokens))
    np.testing.assert_allclose(np.asarray(cached.scores), np.asarray(recomputed.scores), atol=1e-4)


@pytest.mark.parametrize("search", [GreedySearch(), BeamSearch(beam_size=4, n_best=4)],
                         ids=["greedy", "beam"])
def test_a_sentence_decodes_the_same_alone_and_in_a_padded_batch(model, search):
    batch = generate(model, SOURCE, search, max_length=12)
    alone = generate(model, SOURCE[1:, :3], search, max_length=12)
    np.testing.assert_array_equal(np.asarray(batch.tokens)[1], np.asarray(alone.tokens)[0])
    np.testing.assert_allclose(np.asarray(batch.scores)[1], np.asarray(alone.scores)[0], atol=1e-5)


@pytest.mark.parametrize("search", [GreedySearch(), BeamSearch(beam_size=3, n_best=2),
                                    BeamSearch(beam_size=3, n_best=2, coverage_penalty=0.2)],
                         ids=["greedy", "beam", "beam_coverage"])
def test_search_alignments_equal_the_full_pass_cross_attention(model, search):
    result = generate(model, SOURCE, search, max_length=12, return_alignments=True)
    tokens, alignments = np.asarray(result.tokens), np.asarray(result.alignments)
    assert alignments.shape == (*tokens.shape, SOURCE.shape[1])
    for j in range(tokens.shape[1]):
        # Last decoder layer, mean over heads; query t - 1 reads token t - 1 to choose token t.
        full = np.asarray(model.cross_attention(SOURCE, tokens[:, j])).mean(axis=1)
        for b in range(2):
            length = int((tokens[b, j] != 0).sum())  # start id .. end id
            np.testing.assert_allclose(
                alignments[b, j, 1:length], full[b, :length - 1], atol=1e-5)
            assert not alignments[b, j, length:].any()
    # Each step's attention is a distribution over the real source tokens only.
    np.testing.assert_allclose(alignments[1, 0, 1:4].sum(axis=-1), 1.0, atol=1e-5)
    assert not alignments[1, :, :, 3:].any()


def test_search_compiles_with_xla(model):
    import tensorflow as tf

    search = BeamSearch(beam_size=2, n_best=1)

    @tf.function(jit_compile=True)
    def decode(source):
        result = generate(model, source, search, max_length=12)
        return result.tokens, result.scores

    tokens, scores = decode(tf.constant(SOURCE))
    eager = generate(model, SOURCE, search, max_length=12)
    np.testing.assert_array_equal(tokens.numpy(), np.asarray(eager.tokens))
    np.testing.assert_allclose(scores.numpy(), np.asarray(eager.scores), atol=1e-4)
