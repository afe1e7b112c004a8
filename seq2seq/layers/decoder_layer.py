"""Transformer decoder layer: causal self-attention + cross-attention + feed-forward."""

import keras
from keras import ops

from seq2seq.layers import masking
from seq2seq.layers.block import TransformerBlock


@keras.saving.register_keras_serializable(package="seq2seq")
class DecoderLayer(TransformerBlock):
    """One decoder layer; hyperparameters as in `TransformerBlock`.

    The same call serves training (whole target, causal mask) and cached decoding (a chunk of
    target positions starting at `self_attention_cache_update_index`, keys/values written into
    the fixed-shape `self_attention_cache`, encoder keys/values read from
    `cross_attention_cache`, computed once per source with
    `self.cross_attention.compute_key_value(encoder_sequence)`).

    Call arguments:
        decoder_sequence: `(batch, target_length, hidden)`.
        encoder_sequence: `(batch, source_length, hidden)`; unused with `cross_attention_cache`.
        decoder_padding_mask: `(batch, target_length)` bool, True at real tokens (uncached only).
        encoder_padding_mask: `(batch, source_length)` bool, True at real source tokens.
        self_attention_cache: `(batch, 2, heads, max_length, head_dim)` or None.
        self_attention_cache_update_index: position of `decoder_sequence[:, 0]`.
        cross_attention_cache: `(batch, 2, heads, source_length, head_dim)` or None.
        training: dropout on or off.
        return_cross_attention: also return the cross-attention probabilities
            `(batch, heads, target_length, source_length)`.

    Returns:
        `outputs` `(batch, target_length, hidden)`; `(outputs, self_attention_cache)` when a
        self-attention cache is passed; the cross-attention probabilities appended last with
        `return_cross_attention`.
    """

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        shape = decoder_sequence_shape
        self.self_attention, self.self_attention_norm = self._attention(
            "self_attention", shape, self_attention=True
        )
        self.cross_attention, self.cross_attention_norm = self._attention(
            "cross_attention", shape, encoder_sequence_shape or shape
        )
        self._build_feed_forward(shape)

    def call(
        self,
        decoder_sequence,
        encoder_sequence=None,
        decoder_padding_mask=None,
        encoder_padding_mask=None,
        self_attention_cache=None,
        self_attention_cache_update_index=None,
        cross_attention_cache=None,
        training=None,
        return_cross_attention=False,
    ):
        query_length = ops.shape(decoder_sequence)[1]
        if self_attention_cache is None:
            if decoder_padding_mask is None:
                self_mask = masking.causal_mask(query_length, query_length)
            else:
                self_mask = masking.self_attention_mask(decoder_padding_mask, causal=True)
        else:
            self_mask = masking.causal_mask(
                query_length,
                ops.shape(self_attention_cache)[3],
                offset=self_attention_cache_update_index,
            )
        cross_mask = None
        if encoder_padding_mask is not None:
            cross_mask = masking.cross_attention_mask(encoder_padding_mask, query_length)

        x = self._residual(
            decoder_sequence,
            self.self_attention_norm,
            lambda x: self.self_attention(
                x,
                attention_mask=self_mask,
                cache=self_attention_cache,
                cache_update_index=self_attention_cache_update_index,
                training=training,
            ),
            training,
        )
        if self_attention_cache is not None:
            x, self_attention_cache = x
        x = self._residual(
            x,
            self.cross_attention_norm,
            lambda x: self.cross_attention(
                x,
                encoder_sequence,
                attention_mask=cross_mask,
                cache=cross_attention_cache,
                training=training,
                return_attention_scores=return_cross_attention,
            ),
            training,
        )
        if cross_attention_cache is not None or return_cross_attention:
            x, cross_attention = x
        x = self._residual(
            x,
            self.feed_forward_norm,
            lambda x: self.feed_forward(x, training=training),
            training,
        )
        outputs = (x,) if self_attention_cache is None else (x, self_attention_cache)
        if return_cross_attention:
            outputs += (cross_attention,)
        return outputs[0] if len(outputs) == 1 else outputs
