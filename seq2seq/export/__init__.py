"""Exports of a trained model: a SavedModel for TensorFlow Serving (strings in, strings out)
and a CTranslate2 model directory."""

# export.format -> the exports it writes (config.CHOICES names the keys).
FORMATS = {
    "saved_model": ("saved_model",),
    "ctranslate2": ("ctranslate2",),
    "both": ("saved_model", "ctranslate2"),
}
