"""Denoising pretraining, then a translation fine-tune, on the bundled data:
`python recipes/pretrain_finetune/train.py --work-dir DIR [--max-train-pairs N]`.

1. texts: the German and English man pages (`seq2seq.datasets`, `manpages`) and both sides of
   the LibreOffice help's training sentence pairs, one text a line, shuffled
   (DIR/texts.txt), so that the vocabulary learned in step 2 covers both tasks;
2. `seq2seq train pretrain` (seq2seq/recipes/pretrain.yaml): BART-style denoising for
   `--pretrain-minutes` (DIR/pretrain);
3. `seq2seq train translation --set training.init_checkpoint=DIR/pretrain`: the translation
   recipe, fine-tuned from the pretrained weights for `--finetune-minutes`, on all the
   parallel data or on its first `--max-train-pairs` pairs (DIR/finetune[-N]).

4 + 8 minutes of training: the translation recipe's 12, for a comparison at equal minutes
(docs/results.md: 32.62-33.14 test BLEU against the recipe's 30.96-31.54; 6 + 6: 32.56-32.73).
Each step is a command of its own, and running the script again resumes it: a finished run
says so, and another `--max-train-pairs` fine-tunes the same pretrained run again.
"""

import argparse
import pathlib
import random
import subprocess
import sys

from seq2seq import datasets
from seq2seq.text import sentences

# The recipe pretrained with; the translation recipe is then fine-tuned from it.
RECIPE = "pretrain"


def seq2seq(*argv):
    subprocess.run([sys.executable, "-m", "seq2seq.cli", *argv], check=True)


def write_texts(path, texts, limit=None, seed=0):
    """The distinct texts, shuffled, the first `limit` of them, one a line."""
    texts = list(dict.fromkeys(" ".join(t.split()) for t in texts))
    random.Random(seed).shuffle(texts)
    path.write_text("".join(t + "\n" for t in texts[:limit]), encoding="utf-8")
    return path


def texts_of(split):
    pairs = datasets.load("libreoffice-help", "en-de", split)
    if split == "train":
        pairs = sentences.split_pairs(pairs)
    sides = [text for pair in pairs for text in pair]
    return sides + datasets.load_texts("manpages", "de", split) + \
        datasets.load_texts("manpages", "en", split)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", required=True, type=pathlib.Path)
    parser.add_argument("--pretrain-minutes", type=float, default=4.0)
    parser.add_argument("--finetune-minutes", type=float, default=8.0)
    parser.add_argument("--max-train-pairs", type=int,
                        help="fine-tune on the first N parallel pairs only (low-resource)")
    args = parser.parse_args()
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "texts.txt").exists():
        write_texts(work / "valid.txt", texts_of("valid"), limit=1000)
        write_texts(work / "test.txt", texts_of("test"), limit=1000)
        write_texts(work / "texts.txt", texts_of("train"))
    seq2seq("train", RECIPE, "--run-dir", str(work / "pretrain"),
            "--set", f"data.train_file={work / 'texts.txt'}",
            "--set", f"data.valid_file={work / 'valid.txt'}",
            "--set", f"data.test_file={work / 'test.txt'}",
            "--set", f"training.time_budget_minutes={args.pretrain_minutes}")
    suffix = f"-{args.max_train_pairs}" if args.max_train_pairs else ""
    seq2seq("train", "translation", "--run-dir", str(work / f"finetune{suffix}"),
            "--set", f"training.init_checkpoint={work / 'pretrain'}",
            "--set", f"training.time_budget_minutes={args.finetune_minutes}",
            *(["--set", f"data.max_train_pairs={args.max_train_pairs}"]
              if args.max_train_pairs else []))


if __name__ == "__main__":
    main()
