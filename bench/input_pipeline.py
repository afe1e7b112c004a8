"""Input pipeline speed against the training step rate of the "small" model.

One epoch of the bundled LibreOffice help EN-DE training data through the token-budget
pipeline (already tokenized, as in training), one epoch through the same bucketing built from
tf.data's element-wise `bucket_by_sequence_length` (what `make_dataset` did before it planned
each epoch with vectorized ops), then a few training steps of the "small" model on batches of
the pipeline, alternating, in one process. The CPU time per batch is the process's (all
threads): on a 2-core machine it is taken from the training step. Ends with one JSON line:
`pipeline_examples_s`, `pipeline_tokens_s`, `pipeline_cpu_ms_per_batch`,
`elementwise_examples_s`, `elementwise_cpu_ms_per_batch`, `train_examples_s`, `ratio`
(pipeline examples/s over training examples/s; goal >= 10: the pipeline is never the
bottleneck), and the one-off tokenization cost. `sampled_*` and `ratio_sampled`: the same
pipeline with subword regularization on both sides (`data.subword_alpha: 0.1`: each batch
segmented anew from its text by SentencePiece sampling), plus source noise (word dropout 0.1,
blanking 0.1, shuffle distance 3). `denoising_*` and `ratio_denoising`: the same pipeline with
the denoising task's corruption of each batch's sources (`data.task: denoising`: 30% of the
tokens masked in Poisson(3) spans, sentences permuted).

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
from seq2seq.data.denoising import MASK_TOKEN, sentence_ends  # noqa: E402
from seq2seq.data.noise import word_starts  # noqa: E402
from seq2seq.data.pipeline import (  # noqa: E402
    Corruption,
    Resampling,
    SourceNoise,
    bucket_batch_sizes,
    bucket_boundaries,
    encode_pairs,
    make_dataset,
    teacher_forcing,
)
from seq2seq.models import Transformer  # noqa: E402
from seq2seq.text.tokenizer import train_tokenizer  # noqa: E402


def elementwise_dataset(sources, targets, batch_tokens, max_length, seed=0):
    """The same batches built one element at a time with tf.data's bucket_by_sequence_length."""
    count = int(sources.nrows())
    bounds = bucket_boundaries(max_length)
    sizes = bucket_batch_sizes(bounds, batch_tokens, max_length)
    dataset = tf.data.Dataset.range(count).map(
        lambda i: (sources[i], targets[i]), num_parallel_calls=tf.data.AUTOTUNE
    )
    dataset = dataset.shuffle(count, seed=seed).bucket_by_sequence_length(
        lambda s, t: tf.maximum(tf.shape(s)[0], tf.shape(t)[0] + 1),
        bucket_boundaries=bounds,
        bucket_batch_sizes=sizes,
    )
    return dataset.map(teacher_forcing, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE
    )


def one_epoch(dataset, figures):
    """Iterates `dataset` once, adding examples, tokens, batches, wall and CPU seconds."""
    start, cpu = time.perf_counter(), time.process_time()
    for (source, _), _, weights in dataset:
        figures["examples"] += int(source.shape[0])
        figures["tokens"] += float(tf.reduce_sum(weights))
        figures["batches"] += 1
    figures["seconds"] += time.perf_counter() - start
    figures["cpu_seconds"] += time.process_time() - cpu


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
        [s for p in pairs[:20000] for s in p], vocabulary_size=args.vocabulary,
        reserved_tokens=[MASK_TOKEN],
    )
    start = time.perf_counter()
    sources, targets, _, kept = encode_pairs(pairs, tokenizer, tokenizer, args.max_length,
                                             return_kept=True)
    tokenize_s = time.perf_counter() - start
    kept_pairs = [p for p, k in zip(pairs, kept.numpy()) if k]
    resample = Resampling([s for s, _ in kept_pairs], [t for _, t in kept_pairs],
                          tokenizer.sampled(0.1), tokenizer.sampled(0.1))
    noise = SourceNoise(word_starts(tokenizer), drop=0.1, blank=0.1, shuffle_distance=3)
    corruption = Corruption(tokenizer.token_id(MASK_TOKEN), sentence_ends(tokenizer), 0.3, 3.0)
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
    figures = {name: dict(examples=0, tokens=0.0, batches=0, seconds=0.0, cpu_seconds=0.0)
               for name in ("pipeline", "elementwise", "sampled", "denoising")}
    pipeline, elementwise = figures["pipeline"], figures["elementwise"]
    train = {"examples": 0, "seconds": 0.0}
    for round_ in range(args.rounds):
        one_epoch(make_dataset(sources, targets, batch_tokens=args.batch_tokens,
                               max_length=args.max_length, seed=round_), pipeline)
        one_epoch(elementwise_dataset(sources, targets, args.batch_tokens, args.max_length,
                                      seed=round_), elementwise)
        one_epoch(make_dataset(sources, targets, batch_tokens=args.batch_tokens,
                               max_length=args.max_length, seed=round_, noise=noise,
                               resample=resample), figures["sampled"])
        one_epoch(make_dataset(sources, targets, batch_tokens=args.batch_tokens,
                               max_length=args.max_length, seed=round_, noise=corruption),
                  figures["denoising"])
        assert pipeline["examples"] == elementwise["examples"] == epoch_examples * (round_ + 1)

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
        "pipeline_cpu_ms_per_batch": round(
            1000 * pipeline["cpu_seconds"] / pipeline["batches"], 2),
        "elementwise_examples_s": round(elementwise["examples"] / elementwise["seconds"], 1),
        "elementwise_cpu_ms_per_batch": round(
            1000 * elementwise["cpu_seconds"] / elementwise["batches"], 2),
        "train_examples_s": round(train_examples_s, 1),
        "ratio": round(pipeline_examples_s / train_examples_s, 1),
        "sampled_examples_s": round(
            figures["sampled"]["examples"] / figures["sampled"]["seconds"], 1),
        "sampled_cpu_ms_per_batch": round(
            1000 * figures["sampled"]["cpu_seconds"] / figures["sampled"]["batches"], 2),
        "ratio_sampled": round(
            figures["sampled"]["examples"] / figures["sampled"]["seconds"] / train_examples_s, 1),
        "denoising_examples_s": round(
            figures["denoising"]["examples"] / figures["denoising"]["seconds"], 1),
        "denoising_cpu_ms_per_batch": round(
            1000 * figures["denoising"]["cpu_seconds"] / figures["denoising"]["batches"], 2),
        "ratio_denoising": round(figures["denoising"]["examples"]
                                 / figures["denoising"]["seconds"] / train_examples_s, 1),
    }))


if __name__ == "__main__":
    main()
