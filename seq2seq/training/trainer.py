"""`train_and_evaluate(config, run_dir)`: the whole job, resumable."""

import dataclasses
import json
import logging
import math
import os
import pathlib
import shutil
import time

import keras
import tensorflow as tf

from seq2seq import atomic
from seq2seq import config as config_lib
from seq2seq.decoding.translator import Translator
from seq2seq.models import build_model, sizes
from seq2seq.run_directory import KEPT_FIELDS, check_same_model, evaluate
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

# training.optimizer -> its class (config.CHOICES names them).
OPTIMIZERS = {"adam": FusedAdam, "adamw": FusedAdamW}


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
    if training.optimizer == "adamw":
        options["weight_decay"] = training.weight_decay
    return OPTIMIZERS[training.optimizer](**options)


def compile_model(model, config, budget_used=None):
    model.compile(
        optimizer=build_optimizer(config.training, budget_used),
        loss=LabelSmoothedCrossEntropy(config.training.label_smoothing),
        weighted_metrics=[TokenAccuracy(), TokenCount()],
        jit_compile=config.training.jit_compile,
    )


class Run:
    """A run directory being trained: its config, tokenizers, model, optimizer and
    checkpoints. Opening a trained run to translate, evaluate or export is
    `seq2seq.run_directory.load_run`'s, which reads no training data.

    Args:
        config: a checked `Config`; `training.precision` may still be `auto`.
        run_dir: the run directory.
        print_fn: where progress lines go.
        strategy: the tf.distribute strategy, when the caller built it already.
    """

    def __init__(self, config, run_dir, print_fn=print, strategy=None):
        config_lib.check(config)  # a config built in Python, not loaded
        self.config = config
        self.run_dir = pathlib.Path(run_dir)
        self.print = print_fn
        # The strategy first: MultiWorkerMirroredStrategy must come before any TensorFlow op,
        # and `auto` may time matmuls.
        self.strategy = strategy or get_distribution_strategy(
            config.training.strategy, config.training.tpu)
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
            if config.training.freeze_encoder:
                # Before the optimizer is built: its slots, and so every checkpoint, cover
                # exactly the trainable weights, and a resumed fine-tune continues them.
                _freeze_encoder(self.model, print_fn)
            self.model.optimizer.build(self.model.trainable_variables)
        self.checkpoints = Checkpoints(
            self.run_dir, self.model, self.model.optimizer, config.training.keep_checkpoints,
            is_chief=_is_chief(self.strategy), budget_used=self.budget_used,
        )
        self.translator = Translator.for_config(
            self.model, self.source_tokenizer, self.target_tokenizer, config)

    def restore_final(self):
        """Loads the weights the run stands for (`Checkpoints.restore_final`)."""
        return self.checkpoints.restore_final(self.config.training)


def _is_chief(strategy):
    """Worker 0 of a multi-worker cluster (or any single-machine strategy) writes the run."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return resolver.task_type in (None, "chief") or (
        resolver.task_type == "worker" and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )


def _check_resumable(config, run_dir):
    """Whether `run_dir` holds a run to resume; refuses one with checkpoints under another
    architecture or vocabulary (`run_directory.kept_fields`), before its config.yaml is
    overwritten."""
    saved = run_dir / "config.yaml"
    if not tf.train.latest_checkpoint(str(checkpoint_directory(run_dir))):
        return False
    if saved.exists():
        check_same_model(config_lib.load(saved), config, run_dir)
    return True


# What a fine-tune takes from its base run where its own config leaves the field at the
# default: the whole model, and what defines the vocabulary and how sources are written.
BASE_FIELDS = (*(f"model.{f.name}" for f in dataclasses.fields(config_lib.ModelConfig)),
               *(key for key in KEPT_FIELDS if key.startswith("data.")), "data.source_prefix")


def _with_base_model(config, run_dir, print_fn):
    """A fine-tune's config (`training.init_checkpoint`) with the base run's `BASE_FIELDS`
    wherever it leaves them at their defaults, so that a fine-tuning config need not repeat
    the base's architecture (an imported OPUS-MT model's, say); a field it sets to another
    value than the base's is refused later (`check_same_model`). A resumed fine-tune reads
    them from its own config.yaml, which holds them."""
    if not config.training.init_checkpoint:
        return config
    own = run_dir / "config.yaml"
    base = pathlib.Path(config.training.init_checkpoint) / "config.yaml"
    resuming = own.exists() and tf.train.latest_checkpoint(str(checkpoint_directory(run_dir)))
    source = own if resuming else base
    if not source.exists():
        return config  # _fine_tuning_base says what is missing
    other, defaults = config_lib.load(source), config_lib.Config()
    data = config.to_dict()
    taken = []
    for key in BASE_FIELDS:
        theirs = config_lib.field_value(other, key)
        default = config_lib.field_value(defaults, key)
        if config_lib.field_value(config, key) == default and theirs != default:
            section, field = key.split(".")
            data[section][field] = theirs
            taken.append(f"{key}={theirs!r}")
    if not taken:
        return config
    print_fn(f"fine-tuning {'(resumed) ' if resuming else ''}with the base run's "
             + ", ".join(taken))
    return config_lib.from_dict(data, where=f"{config.training.init_checkpoint} (base run)")


def _fine_tuning_base(config, run_dir):
    """Fine-tuning (`training.init_checkpoint`): the base run's config, after checking that
    its model is this config's and copying its tokenizer into `run_dir` (a vocabulary learned
    anew would give its ids other meanings than the base's embedding rows have)."""
    base = pathlib.Path(config.training.init_checkpoint)
    where = f"training.init_checkpoint={str(base)!r}"
    if not (base / "config.yaml").exists() or not (base / "tokenizer").is_dir():
        raise FileNotFoundError(
            f"{where}: expected a run directory of `seq2seq train` (with config.yaml, "
            "tokenizer/ and checkpoints/), found none there."
        )
    base_config = config_lib.load(base / "config.yaml")
    check_same_model(base_config, config, base, instead=f"another {where}")
    tokenizer, base_tokenizer = run_dir / "tokenizer", base / "tokenizer"
    if tokenizer.exists():
        if inputs.directory_files(tokenizer) != inputs.directory_files(base_tokenizer):
            raise ValueError(
                f"{tokenizer} is not the tokenizer of {where}: a fine-tune keeps its base "
                "run's vocabulary; expected a new --run-dir, or the training.init_checkpoint "
                f"{run_dir} was started from."
            )
    else:
        partial = tokenizer.with_name("tokenizer.partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(base_tokenizer, partial)
        partial.rename(tokenizer)
    return base, base_config


def _freeze_encoder(model, print_fn):
    """Makes the encoder's weights untrainable. A token table shared with the decoder (and the
    tied output projection) is the decoder's too: it stays trainable, and the run says so."""
    for layer in model.encoder_layers:
        layer.trainable = False
    if model.encoder_norm is not None:
        model.encoder_norm.trainable = False
    if model.source_embedding is model.target_embedding:
        print_fn("training.freeze_encoder: the encoder layers are frozen; the token table "
                 "stays trainable, as the decoder and the output projection share it "
                 "(model.share_embeddings=true)")
    else:
        model.source_embedding.trainable = False


def train(config, run_dir, print_fn=print):
    """Trains (or resumes) the run in `run_dir` for exactly `training.steps` steps (or until
    its time budget or early stopping ends it); returns the `Run`."""
    config_lib.check(config)
    config_lib.check_training_data(config)
    run_dir = pathlib.Path(run_dir)
    config = _with_base_model(config, run_dir, print_fn)
    training = config.training
    resuming = _check_resumable(config, run_dir)
    strategy = get_distribution_strategy(training.strategy, training.tpu)
    # A resumed fine-tune has its weights and tokenizer: its base run is not read again.
    base = (_fine_tuning_base(config, run_dir) if training.init_checkpoint and not resuming
            else None)
    run = Run(config, run_dir, print_fn, strategy=strategy)
    # The run records the precision it trains in: its translate, evaluate and export use it
    # without probing again, wherever they run.
    run.config = config = dataclasses.replace(
        config, training=dataclasses.replace(training, precision=run.precision))
    config_lib.save(config, run_dir / "config.yaml")
    restored = run.checkpoints.restore()
    step = int(run.model.optimizer.iterations.numpy())
    if restored:
        print_fn(f"resuming from {restored} at step {step}")
    elif base is not None:
        base_dir, base_config = base
        weights = Checkpoints(base_dir, run.model).restore_final(base_config.training)
        print_fn(f"initialised from {weights}")

    eval_every = max(1, min(training.eval_every, training.steps))
    epochs = math.ceil(training.steps / eval_every)
    batches = int(run.checkpoints.batches.numpy())
    stopped_by = run.checkpoints.stop_reason.numpy().decode()
    if step >= training.steps or stopped_by in ("time budget", "early stopping"):
        print_fn(f"training already finished at step {step} ({stopped_by or 'all steps done'})")
        return run
    with run.strategy.scope():
        dataset = inputs.train_dataset(
            config.data, run.train_pairs, run.source_tokenizer, run.target_tokenizer,
            config.model.max_length, skip=batches,
            # Collective all-reduces (and TPUs) need one batch shape on every worker.
            static_shapes=training.strategy in ("multi_worker", "tpu"), print_fn=print_fn,
        )
    valid_pairs = inputs.evaluation_pairs(config.data, "valid", run.source_tokenizer,
                                          training.valid_sentences)
    logs = run_dir / "logs"
    train_writer = tf.summary.create_file_writer(str(logs / "train"))
    valid_writer = tf.summary.create_file_writer(str(logs / "valid"))
    deadline = None
    callbacks = [NaNGuard(run.checkpoints)]
    if training.time_budget_minutes:
        # A resumed run gets what its checkpoint had left of the budget.
        budget = 60 * training.time_budget_minutes
        used = min(max(float(run.budget_used.numpy()), 0.0), 1.0)
        deadline = time.time() + budget * (1.0 - used)
        callbacks.append(BudgetClock(run.budget_used, deadline, budget))
    validation = Validation(
        config.data.task, run.translator, valid_pairs, run.checkpoints, eval_every,
        valid_writer, total_steps=training.steps, patience=training.early_stopping_patience,
        deadline=deadline, history_path=run_dir / "validation.jsonl", print_fn=print_fn,
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
        # Epochs count whole eval_every blocks; a resumed one ends at the next multiple.
        initial_epoch=min(batches // eval_every, epochs - 1),
        callbacks=callbacks,
        verbose=0,
    )
    return run


def train_and_evaluate(config, run_dir, print_fn=print):
    """Trains, evaluates on the test split, exports; returns the final JSON-able summary."""
    start = time.time()
    run = train(config, run_dir, print_fn)
    config = run.config  # with the precision it resolved
    run.restore_final()
    scores, examples = evaluate(run, "test")
    for name, score in scores.items():
        print_fn(f"test {score!r}")
    for source, reference, hypothesis in examples:
        print_fn(f"  source:     {source}\n  reference:  {reference}\n  hypothesis: {hypothesis}")
    summary = {f"test_{name}": round(float(score), 2) for name, score in scores.items()}
    if config.export.enabled:
        from seq2seq.export import FORMATS

        formats = FORMATS[config.export.format]
        if "saved_model" in formats:
            from seq2seq.export.saved_model import export_translator

            export_dir = export_translator(
                run.translator, pathlib.Path(run_dir) / "export",
                version=config.export.version,
                warmup_texts=[source for source, _, _ in examples],
                quantize=config.export.quantize, limits=config.export,
            )
            summary["export"] = str(export_dir)
        if "ctranslate2" in formats:
            from seq2seq.export.ctranslate2 import export_ctranslate2

            summary["export_ctranslate2"] = str(export_ctranslate2(
                run.model, run.source_tokenizer, run.target_tokenizer, config,
                pathlib.Path(run_dir) / "export" / "ctranslate2",
                quantize=config.export.quantize))
    summary["run_dir"] = str(run_dir)
    summary["minutes"] = round((time.time() - start) / 60, 2)
    signatures = {name: score.signature for name, score in scores.items()}
    atomic.write_text(pathlib.Path(run_dir) / "test_metrics.json",
                      json.dumps({**summary, "signatures": signatures}, indent=2) + "\n")
    _write_hparams(run, summary)
    return summary


# The fields the hparams dashboard shows: what decides a model's quality, not every field.
HPARAMS = (
    "model.num_encoder_layers", "model.num_decoder_layers", "model.hidden_dim", "model.num_heads",
    "model.intermediate_dim", "model.dropout", "model.norm_first", "model.position_embedding",
    "data.tokenizer", "data.vocabulary_size", "data.batch_tokens", "training.optimizer",
    "training.learning_rate", "training.schedule", "training.warmup_steps",
    "training.label_smoothing", "training.steps", "training.precision", "decoding.beam_size",
    "decoding.alpha",
)


def hparams(run):
    """{field: value} of `HPARAMS` for the hparams dashboard: model sizes as built (the named
    size with its overrides), precision as resolved, None values left out."""
    built = sizes.size_kwargs(run.config.model.size)
    values = {}
    for key in HPARAMS:
        section, name = key.split(".")
        value = getattr(getattr(run.config, section), name)
        if section == "model" and name in built and value is None:
            value = built[name]
        if key == "training.precision":
            value = run.precision  # `auto` as resolved on this machine
        if value is not None:
            values[key] = value
    return values


def _write_hparams(run, summary):
    """The TensorBoard hparams dashboard: `hparams(run)` against the final metrics."""
    from tensorboard.plugins.hparams import api as hp

    flat = hparams(run)
    writer = tf.summary.create_file_writer(str(run.run_dir / "logs" / "hparams"))
    with writer.as_default(step=0):
        hp.hparams(flat, trial_id=os.path.basename(os.path.normpath(run.run_dir)))
        for key, value in summary.items():
            if key.startswith("test_"):
                tf.summary.scalar(key, value)
    writer.flush()
