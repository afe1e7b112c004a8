"""Position embeddings: fixed sinusoids (Vaswani et al., 2017) or a learned table.

The learned table is keras-hub's `PositionEmbedding`. The sinusoids are our own: keras-hub's
`SinePositionEncoding` computes the angles in the layer's compute dtype, so under
mixed_bfloat16 positions above 256 round to their neighbours (bfloat16 has an 8-bit mantissa)
and distinct positions get identical encodings. Here angles are always computed in float32 and
only the result is cast.
"""

import math

import keras
import keras_hub
from keras import ops

POSITION_EMBEDDINGS = ("sinusoidal", "learned")


@keras.saving.register_keras_serializable(package="seq2seq")
class SinusoidalPositionEmbedding(keras.layers.Layer):
    """Fixed sine/cosine position encodings, `sin` on even and `cos` on odd features.

    Args:
        max_wavelength: the longest wavelength of the sinusoids.

    Call arguments:
        inputs: `(batch, length, hidden_dim)` embedded tokens; only its shape is read.
        start_index: absolute position of the first token (a tensor while decoding).

    Returns:
        `(batch, length, hidden_dim)` encodings in the compute dtype, to add to `inputs`.
    """

    def __init__(self, max_wavelength=10000, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = max_wavelength

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        length, hidden_dim = shape[-2], shape[-1]
        positions = ops.cast(ops.arange(length) + start_index, "float32")
        features = ops.arange(hidden_dim)
        # 1 / max_wavelength ** (2i / hidden_dim) for the pair of features (2i, 2i + 1).
        exponent = ops.cast(2 * (features // 2), "float32") / ops.cast(hidden_dim, "float32")
        inverse_timescales = ops.exp(-math.log(self.max_wavelength) * exponent)
        angles = ops.expand_dims(positions, 1) * ops.expand_dims(inverse_timescales, 0)
        encodings = ops.where(features % 2 == 0, ops.sin(angles), ops.cos(angles))
        return ops.broadcast_to(ops.cast(encodings, self.compute_dtype), shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "max_wavelength": self.max_wavelength}


def make_position_embedding(kind, max_length, initializer, name):
    """Builds the position embedding named `kind` (one of `POSITION_EMBEDDINGS`)."""
    if kind == "sinusoidal":
        return SinusoidalPositionEmbedding(name=name)
    if kind == "learned":
        return keras_hub.layers.PositionEmbedding(
            sequence_length=max_length, initializer=initializer, name=name
        )
    raise ValueError(
        f"Unknown position embedding {kind!r}; expected one of {', '.join(POSITION_EMBEDDINGS)}."
    )
