"""Every layer through the shared harness, on tiny shapes (batch 2, hidden 8)."""

import numpy as np
import pytest

from seq2seq.layers import (
    DecoderLayer,
    Dropout,
    EncoderLayer,
    FeedForward,
    LayerNormalization,
    MultiHeadAttention,
    TokenAndPositionEmbedding,
)
from tests.layer_harness import run_layer_test

BATCH, SOURCE, TARGET, HIDDEN = 2, 7, 5, 8
rng = np.random.default_rng(0)
source_sequence = rng.normal(size=(BATCH, SOURCE, HIDDEN)).astype("float32")
target_sequence = rng.normal(size=(BATCH, TARGET, HIDDEN)).astype("float32")
source_mask = np.array([[True] * 7, [True] * 4 + [False] * 3])
target_mask = np.array([[True] * 5, [True] * 3 + [False] * 2])

# Parameter counts, worked out by hand for hidden 8, 2 heads of 4, feed-forward 16.
ATTENTION_PARAMS = (8 * 8 + 8) + (8 * 16 + 16) + (8 * 8 + 8)  # query, key_value, output
FEED_FORWARD_PARAMS = (8 * 16 + 16) + (16 * 8 + 8)
NORM_PARAMS = 2 * 8


def test_feed_forward():
    run_layer_test(
        FeedForward,
        dict(intermediate_dim=16, activation="gelu", dropout=0.1),
        dict(inputs=source_sequence),
        dict(inputs_shape=source_sequence.shape),
        expected_output_shape=(BATCH, SOURCE, HIDDEN),
        expected_num_trainable_weights=4,
        expected_num_params=FEED_FORWARD_PARAMS,
    )


def test_self_attention():
    run_layer_test(
        MultiHeadAttention,
        dict(num_heads=2, head_dim=4, dropout=0.1, self_attention=True),
        dict(query=target_sequence),
        dict(query_shape=target_sequence.shape),
        expected_output_shape=(BATCH, TARGET, HIDDEN),
        expected_num_trainable_weights=4,  # fused query/key/value and output
        expected_num_params=ATTENTION_PARAMS,
    )


def test_cross_attention():
    run_layer_test(
        MultiHeadAttention,
        dict(num_heads=2, head_dim=4, dropout=0.1),
        dict(query=target_sequence, value=source_sequence),
        dict(query_shape=target_sequence.shape, value_shape=source_sequence.shape),
        expected_output_shape=(BATCH, TARGET, HIDDEN),
        expected_num_trainable_weights=6,
        expected_num_params=ATTENTION_PARAMS,
    )


def test_dropout():
    run_layer_test(
        Dropout,
        dict(rate=0.1, seed=1),
        dict(inputs=source_sequence),
        dict(input_shape=source_sequence.shape),
        expected_output_shape=(BATCH, SOURCE, HIDDEN),
        expected_num_trainable_weights=0,
        expected_num_params=0,
    )


def test_layer_normalization():
    run_layer_test(
        LayerNormalization,
        dict(epsilon=1e-5),
        dict(inputs=source_sequence),
        dict(input_shape=source_sequence.shape),
        expected_output_shape=(BATCH, SOURCE, HIDDEN),
        expected_num_trainable_weights=2,
        expected_num_params=NORM_PARAMS,
    )


@pytest.mark.parametrize("norm_first", [True, False], ids=["pre_norm", "post_norm"])
def test_encoder_layer(norm_first):
    run_layer_test(
        EncoderLayer,
        dict(num_heads=2, intermediate_dim=16, dropout=0.1, norm_first=norm_first),
        dict(encoder_sequence=source_sequence, encoder_padding_mask=source_mask),
        dict(encoder_sequence_shape=source_sequence.shape),
        expected_output_shape=(BATCH, SOURCE, HIDDEN),
        expected_num_trainable_weights=4 + 4 + 4,  # fused self-attention, 2 norms, FFN
        expected_num_params=ATTENTION_PARAMS + FEED_FORWARD_PARAMS + 2 * NORM_PARAMS,
    )


@pytest.mark.parametrize("norm_first", [True, False], ids=["pre_norm", "post_norm"])
def test_decoder_layer(norm_first):
    run_layer_test(
        DecoderLayer,
        dict(num_heads=2, intermediate_dim=16, dropout=0.1, norm_first=norm_first),
        dict(
            decoder_sequence=target_sequence,
            encoder_sequence=source_sequence,
            decoder_padding_mask=target_mask,
            encoder_padding_mask=source_mask,
        ),
        dict(
            decoder_sequence_shape=target_sequence.shape,
            encoder_sequence_shape=source_sequence.shape,
        ),
        expected_output_shape=(BATCH, TARGET, HIDDEN),
        expected_num_trainable_weights=4 + 6 + 6 + 4,  # self, cross, 3 norms, FFN
        expected_num_params=2 * ATTENTION_PARAMS + FEED_FORWARD_PARAMS + 3 * NORM_PARAMS,
    )


@pytest.mark.parametrize(
    "position_embedding, tie_output, weights, params",
    [
        ("sinusoidal", True, 1, 20 * 8),
        ("learned", True, 2, 20 * 8 + 16 * 8),
        ("sinusoidal", False, 2, 2 * 20 * 8),
    ],
)
def test_token_and_position_embedding(position_embedding, tie_output, weights, params):
    ids = np.array([[3, 4, 5, 6, 7], [8, 9, 0, 0, 0]], dtype="int32")
    run_layer_test(
        TokenAndPositionEmbedding,
        dict(
            vocabulary_size=20,
            hidden_dim=8,
            max_length=16,
            position_embedding=position_embedding,
            dropout=0.1,
            tie_output=tie_output,
        ),
        dict(token_ids=ids),
        dict(token_ids_shape=ids.shape),
        expected_output_shape=(BATCH, TARGET, HIDDEN),
        expected_num_trainable_weights=weights,
        expected_num_params=params,
        # The untied output projection is read by `logits()`, not by `call()`.
        weights_unused_by_call=() if tie_output else ("reverse_embeddings",),
    )
