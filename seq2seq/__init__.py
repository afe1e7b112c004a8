"""seq2seq: a Keras 3 / TensorFlow toolkit for sequence-to-sequence Transformers."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
