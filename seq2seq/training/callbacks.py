"""Training callbacks: progress, NaN guard, validation with checkpoints, TensorBoard output."""

import json
import math
import time

import keras
import numpy as np
import tensorflow as tf

from seq2seq import atomic
from seq2seq import config as config_lib
from seq2seq.evaluation import metrics
from seq2seq.evaluation.attention_plot import figure_to_png, plot_attention


def learning_rate(optimizer):
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def gradient_norm(optimizer):
    """The global norm of the last applied gradients, or None if the optimizer keeps none
    (`FusedAdam`/`FusedAdamW` keep it; through a loss-scale wrapper too)."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    variable = getattr(optimizer, "gradient_norm", None) if optimizer.built else None
    return None if variable is None else float(keras.ops.convert_to_numpy(variable))


class ProgressLogger(keras.callbacks.Callback):
    """One line every `every` steps: loss, accuracy, learning rate, gradient norm, tokens/s,
    ETA; the same as TensorBoard scalars when a `writer` is given."""

    def __init__(self, total_steps, every=50, writer=None, deadline=None, print_fn=print):
        super().__init__()
        self.total_steps = total_steps
        self.deadline = deadline
        self.every = every
        self.writer = writer
        self.print_fn = print_fn

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        step = int(self.model.optimizer.iterations.numpy())
        if step % self.every and step != self.total_steps:
            return
        elapsed = time.perf_counter() - self.epoch_start
        tokens_per_second = float(logs.get("tokens", 0.0)) / max(elapsed, 1e-9)
        lr = learning_rate(self.model.optimizer)
        norm = gradient_norm(self.model.optimizer)
        seconds_per_step = elapsed / max(batch + 1, 1)
        eta = (self.total_steps - step) * seconds_per_step
        if self.deadline is not None:
            eta = max(0.0, min(eta, self.deadline - time.time()))
        self.print_fn(
            f"step {step}/{self.total_steps} loss {logs.get('loss', float('nan')):.4f} "
            f"acc {logs.get('accuracy', float('nan')):.4f} lr {lr:.2e} "
            + ("" if norm is None else f"gnorm {norm:.3f} ")
            + f"tok/s {tokens_per_second:.0f} eta {eta / 60:.1f}min",
        )
        if self.writer is not None:
            with self.writer.as_default(step=step):
                tf.summary.scalar("loss", logs.get("loss", 0.0))
                tf.summary.scalar("accuracy", logs.get("accuracy", 0.0))
                tf.summary.scalar("learning_rate", lr)
                tf.summary.scalar("tokens_per_second", tokens_per_second)
                if norm is not None:
                    tf.summary.scalar("gradient_norm", norm)


class BudgetClock(keras.callbacks.Callback):
    """Before every step, sets `budget_used` to the fraction of the time budget spent (the
    "linear" schedule decays to zero as it reaches 1).

    Args:
        budget_used: a scalar float variable.
        deadline: `time.time()` at which the budget runs out.
        budget_seconds: the whole budget.
    """

    def __init__(self, budget_used, deadline, budget_seconds):
        super().__init__()
        self.budget_used = budget_used
        self.deadline = deadline
        self.budget_seconds = budget_seconds

    def on_train_batch_begin(self, batch, logs=None):
        left = max(self.deadline - time.time(), 0.0)
        self.budget_used.assign(1.0 - left / self.budget_seconds)


class NaNGuard(keras.callbacks.Callback):
    """Stops training at the first NaN or Inf loss, before any checkpoint is written."""

    def __init__(self, checkpoints):
        super().__init__()
        self.checkpoints = checkpoints

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            step = int(self.model.optimizer.iterations.numpy())
            raise FloatingPointError(
                f"The training loss became {float(loss)} at step {step}; training stopped. "
                f"The last good checkpoint is kept: {self.checkpoints.latest or 'none yet'}. "
                "Lower training.learning_rate, raise training.warmup_steps, or set "
                "training.clip_norm."
            )


class Validation(keras.callbacks.Callback):
    """At the end of every `eval_every` steps, and at the last step: validate, write
    summaries, checkpoint.

    Translates the validation sources (greedy search, for speed), computes BLEU and chrF
    (translation) or ROUGE (summarization), writes scalars, sample outputs and cross-attention
    heatmaps to TensorBoard, saves a checkpoint (and the best one, on the task's metric), and
    stops after `total_steps` steps, on a time budget or when early stopping runs out of
    patience. Its counters (validations without improvement, why training stopped) live in
    the checkpoint, so a resumed run goes on counting.

    Args:
        task: "translation" or "summarization".
        translator: a `Translator` over the model being trained.
        pairs: validation `(source, target)` pairs.
        checkpoints: the run's `Checkpoints`.
        eval_every: steps between validations.
        writer: TensorBoard writer for validation summaries.
        total_steps: the step training ends at (the last validation comes then).
        patience: validations without improvement before stopping (None: never).
        deadline: `time.time()` after which training stops (None: never).
        samples: sentence pairs shown as text and heatmaps.
        history_path: JSON-lines file the validation results are appended to (atomically).
        budget_used: the `BudgetClock`'s variable, recorded in the history.
        print_fn: where progress lines go.
    """

    def __init__(self, task, translator, pairs, checkpoints, eval_every, writer,
                 total_steps=None, patience=None, deadline=None, samples=3, history_path=None,
                 budget_used=None, print_fn=print):
        super().__init__()
        self.task = task
        self.translator = translator
        self.pairs = pairs
        self.checkpoints = checkpoints
        self.eval_every = eval_every
        self.writer = writer
        self.total_steps = total_steps
        self.patience = patience
        self.deadline = deadline
        self.samples = samples
        self.history_path = history_path
        self.budget_used = budget_used
        self.print_fn = print_fn
        self.epoch_batches = 0
        self.stop_reason = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.epoch_batches += 1
        # Keras ends the epoch after this batch; on_epoch_end validates and checkpoints.
        step = int(self.model.optimizer.iterations.numpy())
        if self.total_steps is not None and step >= self.total_steps:
            self.stop_reason = "all steps done"
            self.model.stop_training = True
        elif self.deadline is not None and time.time() >= self.deadline:
            self.stop_reason = "time budget"
            self.model.stop_training = True

    def scores(self, hypotheses, references):
        return metrics.task_scores(self.task, hypotheses, references)

    @property
    def metric_name(self):
        return config_lib.TASK_METRICS[self.task][0]

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        self.checkpoints.batches.assign_add(self.epoch_batches)
        sources = [s for s, _ in self.pairs]
        references = [t for _, t in self.pairs]
        hypotheses = self.translator.translate(sources, strategy="greedy")
        scores = self.scores(hypotheses, references)
        value = float(scores[self.metric_name])
        checkpoints = self.checkpoints
        improved = value > float(checkpoints.best_metric.numpy())
        checkpoints.bad_validations.assign(0 if improved else checkpoints.bad_validations + 1)
        if (self.stop_reason is None and self.patience is not None
                and int(checkpoints.bad_validations.numpy()) >= self.patience):
            self.print_fn(f"early stopping: no better {self.metric_name} for {self.patience} "
                          "validations")
            self.stop_reason = "early stopping"
            self.model.stop_training = True
        checkpoints.stop_reason.assign(self.stop_reason or "")
        if improved:
            checkpoints.save_best(step, value)
        else:
            checkpoints.save(step)
        line = " ".join(f"{name} {float(s):.2f}" for name, s in scores.items())
        self.print_fn(f"validation at step {step}: {line}" + (" (best)" if improved else ""))
        self.write_summaries(step, logs or {}, scores, sources, references, hypotheses)
        if self.history_path is not None:
            record = {"step": step, **{k: float(v) for k, v in scores.items()},
                      "loss": float((logs or {}).get("loss", float("nan")))}
            if self.budget_used is not None:
                record["budget_used"] = float(self.budget_used.numpy())
            atomic.append_line(self.history_path, json.dumps(record))
        if self.stop_reason == "time budget":
            self.print_fn(f"time budget reached at step {step}: training stops")

    def write_summaries(self, step, logs, scores, sources, references, hypotheses):
        with self.writer.as_default(step=step):
            for name, score in scores.items():
                tf.summary.scalar(name, float(score))
            rows = [
                f"| {i} | {s} | {r} | {h} |"
                for i, (s, r, h) in enumerate(
                    zip(sources[: self.samples], references, hypotheses), start=1
                )
            ]
            table = "| # | source | reference | hypothesis |\n|---|---|---|---|\n" + "\n".join(rows)
            tf.summary.text("samples", table)
            for i, (source, hypothesis) in enumerate(
                zip(sources[: self.samples], hypotheses), start=1
            ):
                tf.summary.image(f"cross_attention/{i}", self.heatmap(source, hypothesis))
        self.writer.flush()

    def heatmap(self, source, hypothesis):
        """`(1, height, width, 4)` uint8 image of the hypothesis' cross-attention."""
        translator = self.translator
        source_ids = translator.encode_sources([source])
        target = translator.target_tokenizer.tokenize([hypothesis])
        target_ids = tf.concat([[[1]], tf.cast(target.to_tensor(), tf.int32)], axis=1)
        # A hypothesis tokenized again can come out longer than the search wrote it; the
        # model reads at most max_length positions (a learned position table has no more).
        target_ids = target_ids[:, : self.model.max_length]
        weights = self.model.cross_attention(source_ids, target_ids)[0]
        weights = np.asarray(weights).mean(axis=0)  # average over heads
        to_tokens = lambda tok, ids: [t.decode("utf-8", "replace")  # noqa: E731
                                      for t in tok.id_to_token(ids).numpy()]
        figure = plot_attention(
            weights,
            to_tokens(translator.source_tokenizer, source_ids[0]),
            ["<s>"] + to_tokens(translator.target_tokenizer, target_ids[0, 1:]),
        )
        return tf.image.decode_png(figure_to_png(figure))[tf.newaxis]
