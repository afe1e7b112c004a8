"""The summarization recipe: `python recipes/summarization/train.py --run-dir DIR [--set a.b=c ...]`.

A thin wrapper over `seq2seq train recipes/summarization/config.yaml`.
"""

import pathlib
import sys

from seq2seq.cli import main

if __name__ == "__main__":
    config = pathlib.Path(__file__).with_name("config.yaml")
    sys.exit(main(["train", str(config), *sys.argv[1:]]))
