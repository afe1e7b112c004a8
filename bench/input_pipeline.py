"""Input pipeline speed against the training step rate of the "small" model.

One epoch of the bundled LibreOffice help EN-DE training data through the token-budget
pipeline (already tokenized, as in training), then a few training steps of the "small" model on
batches of the same pipeline, alternating, in one process. Ends with one JSON line:
`pipeline_examples_s`, `pipeline_tokens_s`, `train_examples_s`, `ratio` (pipeline examples/s
over training examples/s; goal >= 10: the pipeline is never the bottleneck), and the one-off
tokenization cost.

    python bench/input_pipeline.py
"""

import argparse
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from seq2seq import datasets  # noqa: E402
from seq2seq.data.pipeline import encode_pairs, make_dataset  # noqa: E402
from seq2seq.models import Transformer  # noqa: E402
from seq2seq.text.tokenizer import train_tokenizer  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-tokens", type=int, default=2560)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--vocabulary", type=int, default=8000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=5)
    args = parser.parse_args()

    pairs = datasets.load("libreoffice-help", split="train")
    tokenizer = train_tokenizer(
        [s for p in pairs[:20000] for s in p], vocabulary_size=args.vocabulary
    )
    start = time.perf_counter()
    sources, targets, _ = encode_pairs(pairs, tokenizer, tokenizer, args.max_length)
    tokenize_s = time.perf_counter() - start
    dataset = make_dataset(
        sources, targets, batch_tokens=args.batch_tokens, max_length=args.max_length, repeat=True
    )
    model = Transformer.from_size(
        "small", source_vocabulary_size=tokenizer.vocabulary_size,
        target_vocabulary_size=tokenizer.vocabulary_size, max_length=args.max_length,
    )
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    batches = iter(dataset)
    for _ in range(8):  # trace the train step for the first shapes
        inputs, labels, weights = next(batches)
        model.train_on_batch(inputs, labels, sample_weight=weights)

    epoch_examples = int(sources.nrows())
    pipeline = {"examples": 0, "tokens": 0.0, "seconds": 0.0}
    train = {"examples": 0, "seconds": 0.0}
    for _ in range(args.rounds):
        start, examples, tokens = time.perf_counter(), 0, 0.0
        for (source, _), _, weights in make_dataset(
            sources, targets, batch_tokens=args.batch_tokens, max_length=args.max_length
        ):
            examples += int(source.shape[0])
            tokens += float(tf.reduce_sum(weights))
        pipeline["seconds"] += time.perf_counter() - start
        pipeline["examples"] += examples
        pipeline["tokens"] += tokens
        assert examples == epoch_examples

        start = time.perf_counter()
        for _ in range(args.train_steps):
            inputs, labels, weights = next(batches)
            model.train_on_batch(inputs, labels, sample_weight=weights)
            train["examples"] += int(inputs[0].shape[0])
        train["seconds"] += time.perf_counter() - start

    pipeline_examples_s = pipeline["examples"] / pipeline["seconds"]
    train_examples_s = train["examples"] / train["seconds"]
    print(json.dumps({
        "machine": f"{os.cpu_count()} cores",
        "examples": epoch_examples,
        "tokenize_all_s": round(tokenize_s, 2),
        "pipeline_examples_s": round(pipeline_examples_s, 1),
        "pipeline_tokens_s": round(pipeline["tokens"] / pipeline["seconds"], 1),
        "train_examples_s": round(train_examples_s, 1),
        "ratio": round(pipeline_examples_s / train_examples_s, 1),
    }))


if __name__ == "__main__":
    main()
