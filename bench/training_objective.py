"""The training objective of the recipes: our loss and accuracy against the fused ones.

Ours (seq2seq/training/losses.py, seq2seq/training/metrics.py): the label-smoothed loss with
its gradient written out, and the token accuracy from one max and one gather. Peer: the same
loss through TensorFlow's fused `softmax_cross_entropy_with_logits` on a dense smoothed
target (a one-hot, a multiply and an add over `(tokens, vocabulary)`), and Keras'
`SparseCategoricalAccuracy`, as the trainer compiled the model before. Two `Run`s of the
recipe (same seed, so the same weights) train on the same cached real batches, timed
alternately in rounds in one process after a warm-up pass over every batch shape (the time
of each epoch from its start to its end, by a callback: bench/recipe_steps.py). A
micro-benchmark of the objective alone (loss, gradient and accuracy on one `(batch, length,
vocabulary)` of logits) runs the same way. Ends with one JSON line: target tokens/s of each,
`speedup` (ours over the peer), CPU milliseconds per step and the objective's milliseconds.

    python bench/training_objective.py
"""

import json
import os
import platform
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from recipe_steps import alternate, cached_batches, parse_args, recipe_runs  # noqa: E402
from seq2seq.training import trainer  # noqa: E402
from seq2seq.training.losses import LabelSmoothedCrossEntropy  # noqa: E402
from seq2seq.training.metrics import TokenAccuracy, TokenCount  # noqa: E402

SYSTEMS = ("ours", "fused")


class FusedSmoothedCrossEntropy(keras.losses.Loss):
    """The peer: the backend's fused softmax cross-entropy on a dense smoothed target."""

    def __init__(self, label_smoothing):
        super().__init__(name="fused_cross_entropy", reduction="mean_with_sample_weight")
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        logits = keras.ops.cast(y_pred, "float32")
        vocabulary_size = logits.shape[-1]
        targets = (keras.ops.one_hot(keras.ops.cast(y_true, "int32"), vocabulary_size)
                   * (1.0 - self.label_smoothing) + self.label_smoothing / vocabulary_size)
        return keras.ops.categorical_crossentropy(targets, logits, from_logits=True)


def compile_fused(run):
    run.model.compile(
        optimizer=trainer.build_optimizer(run.config.training, run.budget_used),
        loss=FusedSmoothedCrossEntropy(run.config.training.label_smoothing),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                          TokenCount()],
    )


def objective_step(loss, accuracy, labels, weights):
    @tf.function
    def step(logits):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = loss(labels, logits, sample_weight=weights)
        gradient = tape.gradient(value, logits)
        accuracy.update_state(labels, logits, sample_weight=weights)
        return value, tf.reduce_sum(gradient)

    return step


def main():
    args = parse_args(__doc__)

    runs = recipe_runs(args.config, {s: ["training.precision=float32"] for s in SYSTEMS})
    compile_fused(runs["fused"])
    run = runs["ours"]
    smoothing = run.config.training.label_smoothing
    batches, target_tokens = cached_batches(run, args.batches)

    # The objective alone, on logits of the recipe's largest batch shape.
    _, labels, weights = max(batches, key=lambda batch: tf.size(batch[1]))
    logits = tf.random.stateless_normal(
        tuple(labels.shape) + (run.target_tokenizer.vocabulary_size,), seed=(0, 1))
    objectives = {
        "ours": objective_step(LabelSmoothedCrossEntropy(smoothing), TokenAccuracy(),
                               labels, weights),
        "fused": objective_step(FusedSmoothedCrossEntropy(smoothing),
                                keras.metrics.SparseCategoricalAccuracy(), labels, weights),
    }
    values = {system: objective(logits) for system, objective in objectives.items()}
    assert abs(float(values["ours"][0]) - float(values["fused"][0])) < 1e-4, values
    assert abs(float(values["ours"][1]) - float(values["fused"][1])) < 1e-3, values
    milliseconds = dict.fromkeys(SYSTEMS, 0.0)
    for _ in range(args.rounds):
        for system in SYSTEMS:
            start = time.perf_counter()
            for _ in range(20):
                float(objectives[system](logits)[1])
            milliseconds[system] += 1000 * (time.perf_counter() - start) / 20 / args.rounds

    totals = alternate(runs, batches, args.batches, target_tokens, args.rounds)
    steps = args.rounds * args.batches
    tokens_s = {s: round(args.rounds * target_tokens / totals[s][0], 1) for s in SYSTEMS}
    print(json.dumps({
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "ours_tgt_tok_s": tokens_s["ours"],
        "fused_tgt_tok_s": tokens_s["fused"],
        "speedup": round(tokens_s["ours"] / tokens_s["fused"], 3),
        # CPU time (all threads) per step: less moved than wall time by other tenants' load.
        "ours_cpu_ms_per_step": round(1000 * totals["ours"][1] / steps, 1),
        "fused_cpu_ms_per_step": round(1000 * totals["fused"][1] / steps, 1),
        "objective_shape": list(logits.shape),
        "ours_objective_ms": round(milliseconds["ours"], 2),
        "fused_objective_ms": round(milliseconds["fused"], 2),
    }))


if __name__ == "__main__":
    main()
