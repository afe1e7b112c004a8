"""The tuning recipe: `python recipes/tuning/tune.py --run-dir DIR [--set a.b=c ...]`.

A thin wrapper over `seq2seq tune tuning`; the config is the package's
(seq2seq/recipes/tuning.yaml, listed by `seq2seq recipes`).
"""

import sys

from seq2seq.cli import main

RECIPE = "tuning"

if __name__ == "__main__":
    sys.exit(main(["tune", RECIPE, *sys.argv[1:]]))
