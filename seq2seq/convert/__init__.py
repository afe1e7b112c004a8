"""Checkpoints of other toolkits converted into run directories (the import side of `export/`).

An importer builds a `Transformer` and writes a run directory through the same API training
uses (config, tokenizers, checkpoints); it imports nothing from the training loop.
"""

from seq2seq.convert.marian import import_marian, read_checkpoint

__all__ = ["import_marian", "read_checkpoint"]
