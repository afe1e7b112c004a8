"""Position embeddings: fixed sinusoids (Vaswani et al., 2017) or a learned table.

The learned table is keras-hub's `PositionEmbedding`. The sinusoids are our own: keras-hub's
`SinePositionEncoding` computes the angles in the layer's compute dtype, so under
mixed_bfloat16 positions above 256 round to their neighbours (bfloat16 has an 8-bit mantissa)
and distinct positions get identical encodings. Here angles are always computed in float32 and
only the result is cast.

Two layouts of the same sinusoids are built: "sinusoidal" interleaves them (sin on even, cos on
odd features, as tensor2tensor and fairseq) and "sinusoidal_halves" puts all sines before all
cosines, as Marian (and so every OPUS-MT model) and Hugging Face's Marian compute them.
"""

import math

import keras
import keras_hub
from keras import ops

POSITION_EMBEDDINGS = ("sinusoidal", "learned", "sinusoidal_halves")
LAYOUTS = ("interleaved", "halves")


@keras.saving.register_keras_serializable(package="seq2seq")
class SinusoidalPositionEmbedding(keras.layers.Layer):
    """Fixed sine/cosine position encodings.

    Feature pair `i` has the angle `position / max_wavelength ** (2i / hidden_dim)`.

    Args:
        max_wavelength: the longest wavelength of the sinusoids.
        layout: "interleaved" (`sin` of pair i on feature 2i, its `cos` on 2i + 1) or
            "halves" (`sin` of pair i on feature i, its `cos` on `hidden_dim / 2 + i`).

    Call arguments:
        inputs: `(batch, length, hidden_dim)` embedded tokens; only its shape is read.
        start_index: absolute position of the first token (a tensor while decoding).

    Returns:
        `(batch, length, hidden_dim)` encodings in the compute dtype, to add to `inputs`.
    """

    def __init__(self, max_wavelength=10000, layout="interleaved", **kwargs):
        super().__init__(**kwargs)
        if layout not in LAYOUTS:
            raise ValueError(f"layout={layout!r}; expected one of {', '.join(LAYOUTS)}.")
        self.max_wavelength = max_wavelength
        self.layout = layout

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        length, hidden_dim = shape[-2], shape[-1]
        positions = ops.cast(ops.arange(length) + start_index, "float32")
        features = ops.arange(hidden_dim)
        if self.layout == "interleaved":  # features (2i, 2i + 1) are pair i's sin and cos
            pair, is_sine = features // 2, features % 2 == 0
        else:  # features i and hidden_dim / 2 + i
            half = hidden_dim // 2
            pair, is_sine = features % half, features < half
        # 1 / max_wavelength ** (2i / hidden_dim) for pair i.
        exponent = ops.cast(2 * pair, "float32") / ops.cast(hidden_dim, "float32")
        inverse_timescales = ops.exp(-math.log(self.max_wavelength) * exponent)
        angles = ops.expand_dims(positions, 1) * ops.expand_dims(inverse_timescales, 0)
        encodings = ops.where(is_sine, ops.sin(angles), ops.cos(angles))
        return ops.broadcast_to(ops.cast(encodings, self.compute_dtype), shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "max_wavelength": self.max_wavelength,
                "layout": self.layout}


def make_position_embedding(kind, max_length, initializer, name):
    """Builds the position embedding named `kind` (one of `POSITION_EMBEDDINGS`)."""
    if kind in ("sinusoidal", "sinusoidal_halves"):
        layout = "interleaved" if kind == "sinusoidal" else "halves"
        return SinusoidalPositionEmbedding(layout=layout, name=name)
    if kind == "learned":
        return keras_hub.layers.PositionEmbedding(
            sequence_length=max_length, initializer=initializer, name=name
        )
    raise ValueError(
        f"Unknown position embedding {kind!r}; expected one of {', '.join(POSITION_EMBEDDINGS)}."
    )
