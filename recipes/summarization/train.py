"""The summarization recipe: `python recipes/summarization/train.py --run-dir DIR [--set a.b=c ...]`.

A thin wrapper over `seq2seq train summarization`; the config is the package's
(seq2seq/recipes/summarization.yaml, listed by `seq2seq recipes`).
"""

import sys

from seq2seq.cli import main

RECIPE = "summarization"

if __name__ == "__main__":
    sys.exit(main(["train", RECIPE, *sys.argv[1:]]))
