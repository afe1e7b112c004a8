"""Back-translation, the whole chain, on the bundled data:
`python recipes/backtranslation/train.py --work-dir DIR`.

1. reverse: `seq2seq train translation --set data.reverse=true`: a German -> English model
   for `--reverse-minutes` (DIR/reverse);
2. `seq2seq backtranslate`: the reverse model translates the German man pages (`manpages`,
   shuffled, DIR/mono.de.txt) for `--backtranslate-minutes`, with greedy search (a weak
   reverse model's best guesses; sampling suits strong ones, Edunov et al., 2018) into
   synthetic English -> German pairs (DIR/synthetic.tsv);
3. forward: `seq2seq train translation` on the real pairs and every synthetic pair once, each
   synthetic source tagged `<BT>` (Caswell et al., 2019), for `--forward-minutes`
   (DIR/forward).

3.5 + 2 + 6.5 minutes: the translation recipe's 12, for a comparison at equal minutes
(docs/results.md). Each step is a command of its own; running the script again resumes it
(a finished run says so, a written synthetic file is kept).
"""

import argparse
import pathlib
import random
import subprocess
import sys

from seq2seq import datasets

# The recipe of the reverse and the forward run alike.
RECIPE = "translation"
TAG = "<BT>"


def seq2seq(*argv):
    subprocess.run([sys.executable, "-m", "seq2seq.cli", *argv], check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", required=True, type=pathlib.Path)
    parser.add_argument("--reverse-minutes", type=float, default=3.5)
    parser.add_argument("--backtranslate-minutes", type=float, default=2.0)
    parser.add_argument("--forward-minutes", type=float, default=6.5)
    parser.add_argument("--strategy", default="greedy", choices=["beam", "greedy", "sampling"])
    args = parser.parse_args()
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    seq2seq("train", RECIPE, "--run-dir", str(work / "reverse"),
            "--set", "data.reverse=true", "--set", "export.enabled=false",
            "--set", f"training.time_budget_minutes={args.reverse_minutes}")
    synthetic = work / "synthetic.tsv"
    if not synthetic.exists():
        texts = datasets.load_texts("manpages", "de")
        random.Random(0).shuffle(texts)
        (work / "mono.de.txt").write_text("".join(t + "\n" for t in texts), encoding="utf-8")
        seq2seq("backtranslate", str(work / "reverse"), str(work / "mono.de.txt"),
                str(synthetic), "--strategy", args.strategy,
                "--max-minutes", str(args.backtranslate_minutes))
    seq2seq("train", RECIPE, "--run-dir", str(work / "forward"),
            "--set", f"data.synthetic_file={synthetic}", "--set", f"data.synthetic_tag={TAG}",
            "--set", f"training.time_budget_minutes={args.forward_minutes}")


if __name__ == "__main__":
    main()
