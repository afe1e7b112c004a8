"""Fine-tuning an imported OPUS-MT model on your pairs:
`python recipes/finetune_opus_mt/train.py --run-dir DIR --set training.init_checkpoint=IMPORTED
--set data.train_file=train.tsv --set data.valid_file=valid.tsv --set data.test_file=test.tsv`.

A thin wrapper over `seq2seq train finetune_opus_mt`; the config is the package's
(seq2seq/recipes/finetune_opus_mt.yaml, listed by `seq2seq recipes`). Import the model first:
`seq2seq import-marian OPUS_MT_DIR IMPORTED` (README, "Start from a pretrained model").
"""

import sys

from seq2seq.cli import main

RECIPE = "finetune_opus_mt"

if __name__ == "__main__":
    sys.exit(main(["train", RECIPE, *sys.argv[1:]]))
