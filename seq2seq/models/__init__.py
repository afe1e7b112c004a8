"""Models assembled from seq2seq.layers."""

from seq2seq.models.factory import build_model
from seq2seq.models.sizes import SIZES
from seq2seq.models.transformer import Transformer

__all__ = ["SIZES", "Transformer", "build_model"]
