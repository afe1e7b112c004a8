import keras
import numpy as np
import pytest

from seq2seq.layers import SinusoidalPositionEmbedding
from seq2seq.layers.position_embedding import make_position_embedding


def vaswani_encoding(positions, hidden_dim):
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d))."""
    table = np.zeros((len(positions), hidden_dim))
    for row, pos in enumerate(positions):
        for i in range(0, hidden_dim, 2):
            angle = pos / 10000 ** (i / hidden_dim)
            table[row, i] = np.sin(angle)
            table[row, i + 1] = np.cos(angle)
    return table


def test_sinusoids_match_the_paper_formula():
    layer = SinusoidalPositionEmbedding()
    out = np.asarray(layer(np.zeros((2, 6, 16), "float32")))
    assert out.shape == (2, 6, 16)
    np.testing.assert_allclose(out[0], vaswani_encoding(range(6), 16), atol=1e-5)
    np.testing.assert_array_equal(out[0], out[1])


def test_start_index_continues_the_sequence():
    layer = SinusoidalPositionEmbedding()
    out = np.asarray(layer(np.zeros((1, 1, 16), "float32"), start_index=5))
    np.testing.assert_allclose(out[0], vaswani_encoding([5], 16), atol=1e-5)


def test_bfloat16_keeps_distant_positions_apart():
    # Angles in bfloat16 would merge positions 300 and 301; ours are computed in float32.
    layer = SinusoidalPositionEmbedding(dtype="mixed_bfloat16")
    out = np.asarray(keras.ops.cast(layer(np.zeros((1, 512, 64), "float32")), "float32"))
    np.testing.assert_allclose(out[0, 300:302], vaswani_encoding([300, 301], 64), atol=1e-2)
    assert not np.allclose(out[0, 300], out[0, 301], atol=1e-2)


def test_unknown_position_embedding_lists_the_valid_names():
    with pytest.raises(ValueError, match="'rotary'.*sinusoidal, learned"):
        make_position_embedding("rotary", 16, "zeros", "p")
