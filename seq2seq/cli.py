"""The `seq2seq` command line: thin wrappers over the library."""

import argparse
import json
import sys


def _demo(args):
    """Trains a tiny Transformer to reverse digit strings and reports its token accuracy."""
    import keras
    import numpy as np

    from seq2seq.models import Transformer

    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    # Ids: 0 pad, 1 start, 2 end, 3..12 the digits.
    lengths = rng.integers(3, 9, size=args.examples)
    source = np.zeros((args.examples, 8), "int32")
    target = np.zeros((args.examples, 10), "int32")
    for row, length in enumerate(lengths):
        digits = rng.integers(3, 13, size=length)
        source[row, :length] = digits
        target[row, : length + 2] = [1, *digits[::-1], 2]
    target_in, labels = target[:, :-1], target[:, 1:]
    model = Transformer.from_size(
        args.size, source_vocabulary_size=13, target_vocabulary_size=13, dropout=0.0
    )
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=["sparse_categorical_accuracy"],
    )
    weights = (labels != 0).astype("float32")
    history = model.fit(
        (source, target_in), labels, sample_weight=weights, batch_size=64,
        epochs=args.epochs, validation_split=0.1, verbose=2,
    )
    result = {
        "size": args.size,
        "params": model.count_params(),
        "val_token_accuracy": round(history.history["val_sparse_categorical_accuracy"][-1], 4),
    }
    print(json.dumps(result))


def build_parser():
    parser = argparse.ArgumentParser(prog="seq2seq", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train a tiny model on a toy reversal task")
    demo.add_argument("--size", default="tiny")
    demo.add_argument("--examples", type=int, default=4000)
    demo.add_argument("--epochs", type=int, default=10)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
