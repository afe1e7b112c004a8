"""A trained run opened for inference: `load_run(path)`.

`translate`, `evaluate` and `export` need what a run directory holds and nothing else: its
`config.yaml` (with the precision it trained in), its `tokenizer/` and its `checkpoints/`. No
training data is read, no tokenizer trained, no precision probed and no optimizer built, so a
run still opens after its data has moved, on another machine, or from a copy of the folder.
Training keeps its own handle (`seq2seq.training.trainer.Run`).
"""

import pathlib

import keras
import tensorflow as tf

from seq2seq import config as config_lib
from seq2seq.decoding.translator import Translator
from seq2seq.evaluation import metrics
from seq2seq.models import build_model
from seq2seq.training import inputs
from seq2seq.training.checkpoints import Checkpoints, require_checkpoint

# What a run directory keeps for life: its checkpoints hold weights of this architecture and
# its tokenizer/ this vocabulary. A resume, a fine-tune from the run and an inference override
# (`--set`) must keep them; dropout and everything about training may change.
KEPT_FIELDS = (
    "model.size", "model.num_encoder_layers", "model.num_decoder_layers", "model.hidden_dim",
    "model.num_heads", "model.intermediate_dim", "model.activation", "model.norm_first",
    "model.position_embedding", "model.share_embeddings", "model.tie_output",
    "model.scale_embeddings", "model.output_bias", "data.tokenizer",
    "data.sentencepiece_model_type", "data.vocabulary_size", "data.joint_vocabulary",
)


def kept_fields(config):
    """`KEPT_FIELDS`, and `model.max_length` where positions are learned (a table of that
    many rows)."""
    if config.model.position_embedding == "learned":
        return (*KEPT_FIELDS, "model.max_length")
    return KEPT_FIELDS


def check_same_model(before, after, run_dir, instead="a new --run-dir"):
    """Raises `ValueError` naming the first kept field (`kept_fields`) where the config
    `after` differs from the config `before` that `run_dir` was trained with."""
    for key in kept_fields(before):
        old, new = config_lib.field_value(before, key), config_lib.field_value(after, key)
        if old != new:
            raise ValueError(
                f"{run_dir} holds a model trained with {key}={old!r}; this config has "
                f"{key}={new!r}. Its checkpoints and tokenizer fit only the architecture and "
                f"vocabulary they were trained with: expected {key}={old!r}, or {instead}."
            )


def load_config(run_dir, overrides=()):
    """The config a run directory was trained with (`config.yaml`), with `overrides` applied
    to anything but its architecture and vocabulary."""
    path = pathlib.Path(run_dir) / "config.yaml"
    if not path.exists():
        raise FileNotFoundError(
            f"{run_dir} is not a run directory: {path} is missing; expected the --run-dir of "
            "a `seq2seq train` command."
        )
    saved = config_lib.load(path)
    config = config_lib.apply_overrides(saved, overrides)
    check_same_model(saved, config, run_dir, instead="no such --set")
    return config


class RunDirectory:
    """A trained run, ready to translate, evaluate and export with its final weights.

    Args:
        run_dir: the run directory.
        overrides: `["section.field=value", ...]` for this use only (e.g. decoding settings);
            the architecture and vocabulary cannot change.

    Attributes:
        config: the run's config, overrides applied.
        precision: the dtype policy the run trained in (recorded in its config when it
            trained; float32 for a run recorded as `auto` by an older version).
        translator: a `Translator` over the model with the run's final weights
            (`Checkpoints.restore_final`: the best, the last or their average by the config).
        restored: which weights those are, in words.
        model, source_tokenizer, target_tokenizer: what the translator holds.

    Example:
    >>> run = load_run("runs/mt")
    >>> run.decode(["Choose Tools - Options."])
    ['Wählen Sie Extras - Optionen.']
    """

    def __init__(self, run_dir, overrides=()):
        self.run_dir = pathlib.Path(run_dir)
        self.config = config = load_config(run_dir, overrides)
        require_checkpoint(self.run_dir, config.training)
        precision = config.training.precision
        self.precision = "float32" if precision == "auto" else precision
        keras.config.set_dtype_policy(self.precision)
        source, target = inputs.load_tokenizers(config.data, self.run_dir / "tokenizer")
        model = build_model(config.model, source.vocabulary_size, target.vocabulary_size)
        dummy = tf.ones((1, 2), tf.int32)
        model((dummy, dummy))
        self.restored = Checkpoints(self.run_dir, model).restore_final(config.training)
        self.model, self.source_tokenizer, self.target_tokenizer = model, source, target
        self.translator = Translator.for_config(model, source, target, config)

    @property
    def strategy(self):
        """The run's decoding strategy (`seq2seq.decoding.from_config(config.decoding)`)."""
        return self.translator.strategy

    def translate(self, texts, strategy=None, **options):
        """`Translator.translate` of the run's translator."""
        return self.translator.translate(texts, strategy, **options)

    def decode(self, sources, n_best=1, **options):
        """Translations of `sources` with the run's strategy, `n_best` per source (see
        `Translator.translate` for `options`)."""
        return self.translator.translate(sources, self.strategy.replace(n_best=n_best),
                                         **options)


def load_run(run_dir, overrides=()):
    """Opens a trained run for inference (`RunDirectory`)."""
    return RunDirectory(run_dir, overrides)


def evaluate(run, split="test"):
    """Decodes `split` with the run's weights and decoding settings; returns its metrics (and
    a few `(source, reference, hypothesis)` examples). `run` is a `RunDirectory` or a training
    `Run` after `restore_final`; only `split` is read."""
    config = run.config
    pairs = inputs.evaluation_pairs(config.data, split, run.source_tokenizer)
    sources, references = [s for s, _ in pairs], [t for _, t in pairs]
    hypotheses = run.translator.translate(sources, run.translator.strategy.replace(n_best=1))
    scores = metrics.task_scores(config.data.task, hypotheses, references)
    examples = list(zip(sources, references, hypotheses))[: config.decoding.examples]
    return scores, examples
