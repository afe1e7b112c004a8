"""Models assembled from seq2seq.layers."""

from seq2seq.models.sizes import SIZES
from seq2seq.models.transformer import Transformer

__all__ = ["SIZES", "Transformer"]
