"""Building blocks of the Transformer, each a registered, serializable Keras layer."""

from seq2seq.layers.attention import MultiHeadAttention
from seq2seq.layers.decoder_layer import DecoderLayer
from seq2seq.layers.dropout import Dropout
from seq2seq.layers.embedding import TokenAndPositionEmbedding
from seq2seq.layers.encoder_layer import EncoderLayer
from seq2seq.layers.feed_forward import FeedForward
from seq2seq.layers.layer_norm import LayerNormalization
from seq2seq.layers.position_embedding import SinusoidalPositionEmbedding

__all__ = [
    "DecoderLayer",
    "Dropout",
    "EncoderLayer",
    "FeedForward",
    "LayerNormalization",
    "MultiHeadAttention",
    "SinusoidalPositionEmbedding",
    "TokenAndPositionEmbedding",
]
