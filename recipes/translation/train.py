"""The translation recipe: `python recipes/translation/train.py --run-dir DIR [--set a.b=c ...]`.

A thin wrapper over `seq2seq train translation`; the config is the package's
(seq2seq/recipes/translation.yaml, listed by `seq2seq recipes`).
"""

import sys

from seq2seq.cli import main

RECIPE = "translation"

if __name__ == "__main__":
    sys.exit(main(["train", RECIPE, *sys.argv[1:]]))
