"""Transformer encoder layer: self-attention + feed-forward."""

import keras

from seq2seq.layers import masking
from seq2seq.layers.block import TransformerBlock


@keras.saving.register_keras_serializable(package="seq2seq")
class EncoderLayer(TransformerBlock):
    """One encoder layer; hyperparameters as in `TransformerBlock`.

    Call arguments:
        encoder_sequence: `(batch, length, hidden)`.
        encoder_padding_mask: `(batch, length)` bool, True at real tokens; None = no padding.
        training: dropout on or off.

    Returns:
        `(batch, length, hidden)`.

    Example:
    >>> layer = EncoderLayer(num_heads=2, intermediate_dim=32)
    >>> layer(np.zeros((1, 5, 8))).shape
    (1, 5, 8)
    """

    def build(self, encoder_sequence_shape):
        self.self_attention, self.self_attention_norm = self._attention(
            "self_attention", encoder_sequence_shape, self_attention=True
        )
        self._build_feed_forward(encoder_sequence_shape)

    def call(self, encoder_sequence, encoder_padding_mask=None, training=None):
        mask = None
        if encoder_padding_mask is not None:
            mask = masking.self_attention_mask(encoder_padding_mask)
        x = self._residual(
            encoder_sequence,
            self.self_attention_norm,
            lambda x: self.self_attention(x, attention_mask=mask, training=training),
            training,
        )
        return self._residual(
            x,
            self.feed_forward_norm,
            lambda x: self.feed_forward(x, training=training),
            training,
        )
