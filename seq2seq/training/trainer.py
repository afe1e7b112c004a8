"""`train_and_evaluate(config, run_dir)`: the whole job, resumable."""

import json
import logging
import math
import os
import pathlib
import time

import keras
import tensorflow as tf

from seq2seq import config as config_lib
from seq2seq.decoding import strategy_options
from seq2seq.decoding.translator import Translator
from seq2seq.evaluation import metrics
from seq2seq.models import Transformer
from seq2seq.training import inputs
from seq2seq.training.callbacks import (
    BudgetClock,
    NaNGuard,
    ProgressLogger,
    Validation,
)
from seq2seq.training.checkpoints import Checkpoints, checkpoint_directory
from seq2seq.training.distribution import get_distribution_strategy, prepare_model
from seq2seq.training.losses import LabelSmoothedCrossEntropy
from seq2seq.training.metrics import TokenAccuracy, TokenCount
from seq2seq.training.optimizers import FusedAdam, FusedAdamW
from seq2seq.training.precision import resolve_precision
from seq2seq.training.schedules import get_schedule

logger = logging.getLogger(__name__)

MODEL_OVERRIDES = ("num_encoder_layers", "num_decoder_layers", "hidden_dim", "num_heads",
                   "intermediate_dim")


def build_model(model_config, source_vocabulary_size, target_vocabulary_size):
    """The `Transformer` a `ModelConfig` describes."""
    options = {name: getattr(model_config, name) for name in MODEL_OVERRIDES
               if getattr(model_config, name) is not None}
    return Transformer.from_size(
        model_config.size,
        source_vocabulary_size=source_vocabulary_size,
        target_vocabulary_size=target_vocabulary_size,
        dropout=model_config.dropout,
        attention_dropout=model_config.attention_dropout,
        activation_dropout=model_config.activation_dropout,
        activation=model_config.activation,
        norm_first=model_config.norm_first,
        position_embedding=model_config.position_embedding,
        max_length=model_config.max_length,
        share_embeddings=model_config.share_embeddings,
        tie_output=model_config.tie_output,
        **options,
    )


def build_optimizer(training, budget_used=None):
    # Without a time budget nothing advances `budget_used`: it stays 0 and the steps decide.
    schedule = get_schedule(
        training.schedule, training.learning_rate, training.warmup_steps, training.steps,
        budget_used=budget_used, decay_fraction=training.decay_fraction,
    )
    options = dict(
        learning_rate=schedule,
        beta_2=training.beta_2,
        epsilon=1e-9,
        global_clipnorm=training.clip_norm,
        gradient_accumulation_steps=training.gradient_accumulation_steps,
    )
    if training.optimizer == "adam":
        return FusedAdam(**options)
    if training.optimizer == "adamw":
        return FusedAdamW(weight_decay=training.weight_decay, **options)
    raise ValueError(f"training.optimizer={training.optimizer!r}; expected adam or adamw.")


def compile_model(model, config, budget_used=None):
    model.compile(
        optimizer=build_optimizer(config.training, budget_used),
        loss=LabelSmoothedCrossEntropy(config.training.label_smoothing),
        weighted_metrics=[TokenAccuracy(), TokenCount()],
        jit_compile=config.training.jit_compile,
    )


class Run:
    """A run directory: its resolved config, tokenizers, model and checkpoints."""

    def __init__(self, config, run_dir, print_fn=print):
        config_lib.check(config)  # a config built in Python, not loaded
        if config.decoding.split_sentences and config.data.task != "translation":
            raise ValueError(
                f"decoding.split_sentences=true with data.task={config.data.task!r}: a summary "
                "is of the whole source; expected decoding.split_sentences=false."
            )
        if config.training.final_checkpoint not in ("best", "last"):
            raise ValueError(
                f"training.final_checkpoint={config.training.final_checkpoint!r}; expected best "
                "or last."
            )
        self.config = config
        self.run_dir = pathlib.Path(run_dir)
        self.print = print_fn
        # The strategy first: MultiWorkerMirroredStrategy must come before any TensorFlow op,
        # and `auto` may time matmuls.
        self.strategy = get_distribution_strategy(config.training.strategy, config.training.tpu)
        self.precision, why = resolve_precision(
            config.training.precision, config.training.strategy
        )
        if config.training.precision == "auto":
            print_fn(f"precision: auto -> {self.precision} ({why})")
        keras.config.set_dtype_policy(self.precision)
        self.train_pairs = inputs.load_split(config.data, "train")
        self.source_tokenizer, self.target_tokenizer = inputs.tokenizers(
            config.data, self.train_pairs, self.run_dir / "tokenizer"
        )
        keras.utils.set_random_seed(config.training.seed)
        with self.strategy.scope():
            # The fraction of the time budget spent; BudgetClock advances it.
            self.budget_used = tf.Variable(0.0, trainable=False, name="budget_used")
            self.model = build_model(
                config.model,
                self.source_tokenizer.vocabulary_size,
                self.target_tokenizer.vocabulary_size,
            )
            compile_model(self.model, config, self.budget_used)
            prepare_model(self.model, self.strategy)
            dummy = tf.ones((1, 2), tf.int32)
            self.model((dummy, dummy))
            self.model.optimizer.build(self.model.trainable_variables)
        self.checkpoints = Checkpoints(
            self.run_dir, self.model, self.model.optimizer, config.training.keep_checkpoints,
            is_chief=_is_chief(self.strategy),
        )
        self.translator = Translator(
            self.model,
            self.source_tokenizer,
            self.target_tokenizer,
            max_source_length=config.data.max_source_length,
            max_length=config.decoding.max_length or config.model.max_length,
            split_sentences=config.decoding.split_sentences,
        )

    def restore_final(self):
        """Loads the weights the run stands for: the mean of the last
        `training.average_checkpoints` checkpoints when that is over 1, else the best
        checkpoint or the last one (`training.final_checkpoint`; the last where no validation
        chose a best). The test metrics of `train`, its export, and the `evaluate`,
        `translate` and `export` commands all use these."""
        training = self.config.training
        if self.checkpoints.latest is None:  # never decode with the initial random weights
            raise FileNotFoundError(
                f"{self.run_dir} has no checkpoint in {self.checkpoints.directory}: training "
                f"wrote none yet (one every training.eval_every={training.eval_every} steps and "
                "at the end); expected a trained run, e.g. after `seq2seq train`."
            )
        best = self.checkpoints.best_manager.latest_checkpoint
        if training.average_checkpoints > 1:
            self.checkpoints.average_last(training.average_checkpoints)
        elif training.final_checkpoint == "best" and best:
            self.checkpoints.restore(best)
        else:
            self.checkpoints.restore()

    def decode(self, sources, n_best=1, return_scores=False):
        """Translations of `sources` with the config's decoding settings (see
        `Translator.translate` for `n_best` and `return_scores`)."""
        decoding = self.config.decoding
        name, options = strategy_options(decoding, n_best=n_best)
        return self.translator.translate(sources, strategy=name, batch_size=decoding.batch_size,
                                         return_scores=return_scores, **options)


def _is_chief(strategy):
    """Worker 0 of a multi-worker cluster (or any single-machine strategy) writes the run."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return resolver.task_type in (None, "chief") or (
        resolver.task_type == "worker" and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )


# What a run directory keeps for life: its checkpoints hold weights of this architecture and
# its tokenizer/ this vocabulary. Dropout, max_length and everything about training may change
# on resume.
KEPT_ON_RESUME = (
    "model.size", "model.num_encoder_layers", "model.num_decoder_layers", "model.hidden_dim",
    "model.num_heads", "model.intermediate_dim", "model.activation", "model.norm_first",
    "model.position_embedding", "model.share_embeddings", "model.tie_output", "data.tokenizer",
    "data.sentencepiece_model_type", "data.vocabulary_size", "data.joint_vocabulary",
)


def _check_resumable(config, run_dir):
    """Refuses to resume a run with checkpoints under another architecture or vocabulary,
    before its config.yaml is overwritten (the run stays as it was)."""
    saved = run_dir / "config.yaml"
    if not saved.exists() or not tf.train.latest_checkpoint(str(checkpoint_directory(run_dir))):
        return
    before = config_lib.load(saved)
    for key in KEPT_ON_RESUME:
        old, new = config_lib.field_value(before, key), config_lib.field_value(config, key)
        if old != new:
            raise ValueError(
                f"{run_dir} holds checkpoints trained with {key}={old!r}; this config has "
                f"{key}={new!r}. A run resumes with the architecture and vocabulary it was "
                f"trained with: expected {key}={old!r}, or a new --run-dir."
            )


def _init_from(run, path):
    """Fine-tuning: the model weights (not the optimizer) of another run's latest checkpoint."""
    checkpoint_dir = pathlib.Path(path)
    if checkpoint_directory(path).exists():
        checkpoint_dir = checkpoint_directory(path)
    latest = tf.train.latest_checkpoint(str(checkpoint_dir)) or str(path)
    tf.train.Checkpoint(model=run.model).read(latest).expect_partial()
    run.print(f"initialised from {latest}")


def _freeze_encoder(model):
    model.source_embedding.trainable = False
    for layer in model.encoder_layers:
        layer.trainable = False
    if model.encoder_norm is not None:
        model.encoder_norm.trainable = False


def train(config, run_dir, print_fn=print):
    """Trains (or resumes) the run in `run_dir`; returns the `Run`."""
    training = config.training
    if training.time_budget_minutes and training.strategy == "multi_worker":
        # Each worker would read its own clock and could stop a step before the others,
        # leaving them waiting in an all-reduce.
        raise ValueError(
            f"training.time_budget_minutes={training.time_budget_minutes} with "
            "training.strategy='multi_worker': workers must stop at the same step; set "
            "training.steps and training.time_budget_minutes=null."
        )
    run_dir = pathlib.Path(run_dir)
    _check_resumable(config, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_lib.save(config, run_dir / "config.yaml")
    run = Run(config, run_dir, print_fn)
    restored = run.checkpoints.restore()
    step = int(run.model.optimizer.iterations.numpy())
    if restored:
        print_fn(f"resuming from {restored} at step {step}")
    elif training.init_checkpoint:
        _init_from(run, training.init_checkpoint)
    if training.freeze_encoder:
        _freeze_encoder(run.model)
        compile_model(run.model, config, run.budget_used)  # trainable variables changed

    eval_every = max(1, min(training.eval_every, training.steps))
    epochs = math.ceil(training.steps / eval_every)
    initial_epoch = int(run.checkpoints.batches.numpy()) // eval_every
    state_file = run_dir / "train_state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    if initial_epoch >= epochs or state.get("stopped_by") in ("time budget", "early stopping"):
        print_fn(f"training already finished at step {step} "
                 f"({state.get('stopped_by', 'all steps done')})")
        return run
    with run.strategy.scope():
        dataset = inputs.train_dataset(
            config.data, run.train_pairs, run.source_tokenizer, run.target_tokenizer,
            config.model.max_length, skip=int(run.checkpoints.batches.numpy()),
            # Collective all-reduces (and TPUs) need one batch shape on every worker.
            static_shapes=training.strategy in ("multi_worker", "tpu"),
        )
    valid_pairs = inputs.load_split(config.data, "valid")[: training.valid_sentences]
    logs = run_dir / "logs"
    train_writer = tf.summary.create_file_writer(str(logs / "train"))
    valid_writer = tf.summary.create_file_writer(str(logs / "valid"))
    deadline = None
    callbacks = [NaNGuard(run.checkpoints)]
    if training.time_budget_minutes:
        # A resumed run gets what its checkpoint had left of the budget.
        budget = 60 * training.time_budget_minutes
        used = _budget_used_at(run_dir / "validation.jsonl", step) if restored else 0.0
        deadline = time.time() + budget * (1.0 - used)
        callbacks.append(BudgetClock(run.budget_used, deadline, budget))
    validation = Validation(
        config.data.task, run.translator, valid_pairs, run.checkpoints, eval_every,
        valid_writer, patience=training.early_stopping_patience, deadline=deadline,
        history_path=run_dir / "validation.jsonl", print_fn=print_fn,
        budget_used=run.budget_used if deadline is not None else None,
    )
    callbacks += [
        ProgressLogger(training.steps, every=max(1, min(50, eval_every)), writer=train_writer,
                       deadline=deadline, print_fn=print_fn),
        validation,
    ]
    run.model.fit(
        dataset,
        epochs=epochs,
        steps_per_epoch=eval_every,
        initial_epoch=initial_epoch,
        callbacks=callbacks,
        verbose=0,
    )
    stopped_by = validation.stop_reason or "all steps done"
    state = {"step": int(run.model.optimizer.iterations.numpy()), "stopped_by": stopped_by}
    partial = state_file.with_name(state_file.name + ".partial")
    partial.write_text(json.dumps(state) + "\n")
    partial.replace(state_file)
    return run


def _budget_used_at(history_path, step):
    """The share of the time budget spent when the checkpoint of `step` was written, from
    the validation history (0 if it does not say)."""
    used = 0.0
    if history_path.exists():
        for line in history_path.read_text().splitlines():
            record = json.loads(line)
            if record["step"] <= step:
                used = record.get("budget_used", used)
    return min(max(used, 0.0), 1.0)


def evaluate(run, split="test"):
    """Decodes a split with the run's final weights (`Run.restore_final`) and the configured
    search; returns its metrics (and examples)."""
    config = run.config
    run.restore_final()
    pairs = inputs.load_split(config.data, split)
    sources, references = [s for s, _ in pairs], [t for _, t in pairs]
    hypotheses = run.decode(sources)
    scores = metrics.task_scores(config.data.task, hypotheses, references)
    examples = list(zip(sources, references, hypotheses))[: config.decoding.examples]
    return scores, examples


def train_and_evaluate(config, run_dir, print_fn=print):
    """Trains, evaluates on the test split, exports; returns the final JSON-able summary."""
    start = time.time()
    run = train(config, run_dir, print_fn)
    scores, examples = evaluate(run, "test")
    for name, score in scores.items():
        print_fn(f"test {score!r}")
    for source, reference, hypothesis in examples:
        print_fn(f"  source:     {source}\n  reference:  {reference}\n  hypothesis: {hypothesis}")
    summary = {f"test_{name}": round(float(score), 2) for name, score in scores.items()}
    if config.export.enabled:
        from seq2seq.export.saved_model import export_translator

        export_dir = export_translator(
            run.translator, config.decoding, pathlib.Path(run_dir) / "export",
            version=config.export.version,
            warmup_texts=[source for source, _, _ in examples],
            quantize=config.export.quantize,
        )
        summary["export"] = str(export_dir)
    summary["run_dir"] = str(run_dir)
    summary["minutes"] = round((time.time() - start) / 60, 2)
    with open(pathlib.Path(run_dir) / "test_metrics.json", "w") as out:
        json.dump({**summary, "signatures": {n: s.signature for n, s in scores.items()}}, out,
                  indent=2)
    _write_hparams(run, summary)
    return summary


def _write_hparams(run, summary):
    """The TensorBoard hparams dashboard: the config against the final metrics."""
    from tensorboard.plugins.hparams import api as hp

    flat = {}
    for section, values in run.config.to_dict().items():
        for key, value in values.items():
            if isinstance(value, (bool, int, float, str)):
                flat[f"{section}.{key}"] = value
    flat["training.precision"] = run.precision  # `auto` as resolved on this machine
    writer = tf.summary.create_file_writer(str(run.run_dir / "logs" / "hparams"))
    with writer.as_default(step=0):
        hp.hparams(flat, trial_id=os.path.basename(os.path.normpath(run.run_dir)))
        for key, value in summary.items():
            if key.startswith("test_"):
                tf.summary.scalar(key, value)
    writer.flush()
