"""Typed configuration: dataclasses with a comment per field, YAML files, CLI overrides.

Precedence: `--set section.field=value` on the command line > the YAML file > the defaults
below. The resolved config is written into the run directory as `config.yaml`, and that file
can be given back to `seq2seq train` as it is.
"""

import dataclasses
import math
import typing
from typing import Optional

import yaml

from seq2seq import atomic, datasets, recipes


@dataclasses.dataclass
class ModelConfig:
    size: str = "small"  # named size: tiny, small, base, big (seq2seq.models.SIZES)
    num_encoder_layers: Optional[int] = None  # overrides the size's value when set
    num_decoder_layers: Optional[int] = None  # overrides the size's value when set
    hidden_dim: Optional[int] = None  # d_model; overrides the size's value when set
    num_heads: Optional[int] = None  # attention heads; overrides the size's value when set
    intermediate_dim: Optional[int] = None  # d_ff; overrides the size's value when set
    dropout: float = 0.1  # residual and embedding dropout
    attention_dropout: float = 0.0  # dropout on attention probabilities
    activation_dropout: float = 0.0  # dropout inside the feed-forward blocks
    activation: str = "relu"  # feed-forward activation
    norm_first: bool = True  # pre-norm (True) or post-norm (False)
    # sinusoidal (interleaved sin/cos), sinusoidal_halves (sines then cosines: Marian) or learned
    position_embedding: str = "sinusoidal"
    max_length: int = 128  # longest source/target in tokens (longer pairs are filtered)
    share_embeddings: bool = True  # one token table for source and target (joint vocabulary)
    tie_output: bool = True  # output projection through the target token table
    scale_embeddings: bool = True  # token embeddings times sqrt(hidden_dim)
    output_bias: bool = False  # a learned bias on the output logits (Marian models have one)


@dataclasses.dataclass
class DataConfig:
    # translation (BLEU/chrF), summarization (ROUGE), or denoising: pretraining on monolingual
    # text, rebuilt from a corrupted copy (seq2seq.data.denoising; BLEU/chrF of the rebuilt text)
    task: str = "translation"
    dataset: Optional[str] = "libreoffice-help"  # bundled dataset name, or None to use files
    dataset_config: Optional[str] = None  # e.g. en-de; None: the dataset's default
    train_file: Optional[str] = None  # TSV / JSONL file(s) when dataset is None
    valid_file: Optional[str] = None  # validation file when dataset is None
    test_file: Optional[str] = None  # test file when dataset is None
    format: str = "tsv"  # tsv, jsonl, or text (denoising: one text a line) (files only)
    reverse: bool = False  # swap sources and targets (a de-en model from en-de pairs)
    source_field: str = "source"  # JSONL field of the source
    target_field: str = "target"  # JSONL field of the target
    on_error: str = "skip"  # malformed lines: skip (counted, one warning) or error
    max_train_pairs: Optional[int] = None  # use only the first N training pairs
    split_sentences: bool = False  # train on sentence pairs where both sides split alike
    # Cut sources to N tokens (end id included) in training and decoding, instead of dropping
    # pairs over model.max_length (summarization: the lead of a long document). None: drop.
    max_source_length: Optional[int] = None
    tokenizer: str = "sentencepiece"  # sentencepiece or wordpiece
    sentencepiece_model_type: str = "unigram"  # unigram or bpe
    vocabulary_size: int = 8000  # subword vocabulary size (special ids included)
    joint_vocabulary: bool = True  # one vocabulary for source and target
    # Vocabulary tokens put before every source, in training and decoding (a multilingual
    # model's target language, e.g. ">>deu<<"); space-separated; None: none.
    source_prefix: Optional[str] = None
    tokenizer_train_pairs: int = 20000  # pairs the vocabulary is learned from
    batch_tokens: Optional[int] = 4096  # token budget per batch (padding included)
    batch_size: Optional[int] = None  # fixed examples per batch instead of a token budget
    static_shapes: bool = False  # pad batches to max_length (always on for multi_worker, tpu)
    shuffle_seed: int = 0  # seed of the per-epoch shuffle
    # Source noise in training (seq2seq.data.noise), on each batch, seeded by shuffle_seed:
    noise_drop: float = 0.0  # word dropout: the share of source words dropped
    noise_blank: float = 0.0  # word blanking: the share replaced by one unknown token
    noise_shuffle_distance: int = 0  # local shuffle: how far a word may move (0: none)
    # Subword regularization (sentencepiece): a segmentation sampled for each training batch;
    # the unigram model's smoothing alpha (e.g. 0.1), or the BPE-dropout rate; None: off.
    subword_alpha: Optional[float] = None
    subword_nbest_size: int = -1  # unigram: sample among the n best segmentations (-1: all)
    subword_targets: bool = False  # sample the targets' segmentations too
    # Denoising (data.task: denoising): the texts are data.dataset's (a monolingual one, or both
    # sides of a parallel one) or data.train_file's; each batch's sources are corrupted anew.
    mask_ratio: float = 0.3  # the expected share of tokens masked, in spans, one <mask> a span
    mask_span_lambda: float = 3.0  # the mean span length (Poisson)
    permute_sentences: bool = True  # shuffle the sentences of each text
    # Synthetic pairs mixed into training (back-translation: `seq2seq backtranslate`):
    synthetic_file: Optional[str] = None  # a TSV / JSONL file (data.format) of synthetic pairs
    # Synthetic pairs per real training pair: the file's pairs in a seeded order, cut or
    # repeated to that many, shuffled in with the real ones; None: each synthetic pair once.
    synthetic_ratio: Optional[float] = None
    # A token put before every synthetic source (tagged back-translation), so that the model
    # can tell them apart; a reserved token of the vocabulary (learned with it). None: none.
    synthetic_tag: Optional[str] = None


@dataclasses.dataclass
class TrainingConfig:
    steps: int = 3000  # optimizer steps in all
    time_budget_minutes: Optional[float] = None  # stop training after this wall-clock time
    eval_every: int = 500  # steps between validations and checkpoints
    optimizer: str = "adam"  # adam or adamw
    learning_rate: float = 1e-3  # peak learning rate
    schedule: str = "inverse_sqrt"  # inverse_sqrt, linear (to 0 at the end), cosine, constant
    warmup_steps: int = 400  # linear warmup steps
    decay_fraction: float = 1.0  # linear only: decay over this last fraction (0.2: WSD)
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    beta_2: float = 0.98  # Adam beta_2
    label_smoothing: float = 0.1  # label smoothing of the cross-entropy
    clip_norm: Optional[float] = 1.0  # clip gradients by global norm (None: off)
    gradient_accumulation_steps: Optional[int] = None  # accumulate gradients over N batches
    precision: str = "float32"  # float32, mixed_bfloat16, mixed_float16, auto (fastest here)
    jit_compile: bool = False  # compile the train step with XLA
    keep_checkpoints: int = 3  # most recent checkpoints kept (the best one is kept apart)
    early_stopping_patience: Optional[int] = None  # validations without improvement to stop
    valid_sentences: int = 300  # validation sentences decoded for BLEU/ROUGE
    init_checkpoint: Optional[str] = None  # fine-tune: weights to start from (run dir)
    freeze_encoder: bool = False  # fine-tune with the encoder frozen
    average_checkpoints: int = 1  # average the last N checkpoints for the final model
    # The weights tested, exported and decoded: best (by validation) or last (a schedule
    # that anneals to the end); average_checkpoints > 1 takes the mean of the last N instead.
    final_checkpoint: str = "best"
    seed: int = 1234  # initialisation seed
    strategy: str = "default"  # default, mirrored, multi_worker, tpu
    # strategy tpu only: the TPU's name or grpc:// address, or "local" on a TPU VM; None: from
    # the TPU_NAME variable or the Cloud TPU environment.
    tpu: Optional[str] = None


@dataclasses.dataclass
class DecodingConfig:
    strategy: str = "beam"  # beam, greedy, sampling
    beam_size: int = 4  # beam width
    alpha: float = 0.6  # GNMT length penalty exponent
    coverage_penalty: float = 0.0  # GNMT coverage penalty weight (beam search; 0: none)
    n_best: int = 1  # hypotheses returned per input
    # beam: stop a sentence once it has beam_size finished hypotheses (not when none alive
    # can beat them)
    early_stopping: bool = False
    min_length: int = 0  # fewest output tokens before the end id
    max_length: Optional[int] = None  # longest output; None: model.max_length
    temperature: float = 1.0  # sampling: divides the logits (< 1 sharpens)
    top_k: int = 0  # sampling: among the k most probable tokens (0: all)
    top_p: float = 1.0  # sampling: among the most probable tokens of mass p (1.0: all)
    seed: Optional[int] = None  # sampling: the same seed draws the same samples
    split_sentences: bool = False  # translate paragraphs one sentence at a time (translation)
    batch_size: int = 64  # sentences per decoding batch
    examples: int = 3  # example translations printed after the test


@dataclasses.dataclass
class ExportConfig:
    enabled: bool = True  # export at the end of training
    # saved_model (TF Serving), ctranslate2 (CTranslate2 runtime) or both
    format: str = "saved_model"
    version: int = 1  # TF Serving model version directory
    quantize: Optional[str] = None  # "int8": int8 weights in the export only
    # also export translate_with_details and translate_with_terms (prefixes, terminology
    # constraints, alignments, confidence); false: a smaller export that saves and loads faster
    controls: bool = True
    # Limits of a served request, checked in the graph, so that no request can exhaust a
    # server's memory (a request is one beam-search batch of all its sentences).
    max_inputs_per_request: int = 64  # more texts in one request: refused with an error
    max_input_bytes: int = 100_000  # a longer text is cut to this many bytes before tokenizing
    max_sentences_per_input: int = 32  # with split_sentences: more sentences in a text: refused


def _default_space():
    return {
        "model.hidden_dim": {"type": "int", "min": 64, "max": 1024, "step": 64},
        "model.num_heads": {"type": "choice", "values": [2, 4, 8, 16]},
        "model.intermediate_dim": {"type": "int", "min": 64, "max": 1024, "step": 64},
        "model.num_encoder_layers": {"type": "int", "min": 1, "max": 6},
        "model.num_decoder_layers": {"type": "int", "min": 1, "max": 6},
        "model.dropout": {"type": "float", "min": 0.0, "max": 0.3, "step": 0.05},
        "model.norm_first": {"type": "boolean"},
        "training.label_smoothing": {"type": "float", "min": 0.0, "max": 0.2, "step": 0.05},
        "training.learning_rate": {"type": "float", "min": 1e-5, "max": 1e-2, "sampling": "log"},
        "training.warmup_steps": {"type": "int", "min": 50, "max": 4000, "sampling": "log"},
    }


@dataclasses.dataclass
class TuningConfig:
    tuner: str = "bayesian"  # bayesian (BayesianOptimization), hyperband, random
    max_trials: int = 10  # trials in all (bayesian, random); hyperband: its own bracket count
    # bleu, chrf (translation); rougeLsum, rouge1, rouge2 (summarization); or loss. None: the
    # task's first (bleu, rougeLsum).
    objective: Optional[str] = None
    steps_per_trial: int = 500  # training steps per trial (hyperband: at its full budget)
    minutes_per_trial: Optional[float] = None  # wall-clock budget per trial (None: no limit)
    seed: int = 0  # seed of the tuner
    # The search space: "section.field" -> {type: int|float|choice|boolean, min, max, step,
    # sampling: linear|log, values}. Fields not named keep the config's value.
    space: dict = dataclasses.field(default_factory=_default_space)


@dataclasses.dataclass
class Config:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    decoding: DecodingConfig = dataclasses.field(default_factory=DecodingConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)
    tuning: TuningConfig = dataclasses.field(default_factory=TuningConfig)

    def to_dict(self):
        return dataclasses.asdict(self)


SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}


@dataclasses.dataclass(frozen=True)
class Bounds:
    """The values a numeric field takes: `low <= value <= high`, either end open or absent."""

    low: Optional[float] = None
    high: Optional[float] = None
    open_low: bool = False  # low < value
    open_high: bool = False  # value < high

    def admits(self, value):
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or (value < self.high if self.open_high else value <= self.high)

    def describe(self, name):
        """`name >= 1`, `0 <= name < 1`, ..."""
        low = "<" if self.open_low else "<="
        high = "<" if self.open_high else "<="
        if self.high is None:
            return f"{name} {low.replace('<', '>')} {self.low}"
        if self.low is None:
            return f"{name} {high} {self.high}"
        return f"{self.low} {low} {name} {high} {self.high}"


_COUNT = Bounds(1)
_NON_NEGATIVE = Bounds(0)
_POSITIVE = Bounds(0, open_low=True)
_RATE = Bounds(0, 1, open_high=True)

# Checked when a config is loaded, so that a bad value fails at once and names its field,
# not minutes later inside a tokenizer or a TensorFlow op. A field that may be null (None)
# is checked only when set.
RANGES = {
    "model.num_encoder_layers": _COUNT,
    "model.num_decoder_layers": _COUNT,
    "model.hidden_dim": _COUNT,
    "model.num_heads": _COUNT,
    "model.intermediate_dim": _COUNT,
    "model.dropout": _RATE,
    "model.attention_dropout": _RATE,
    "model.activation_dropout": _RATE,
    "model.max_length": Bounds(2),  # the start or end id and one token
    "data.max_train_pairs": _COUNT,
    "data.max_source_length": Bounds(2),
    "data.vocabulary_size": _COUNT,
    "data.tokenizer_train_pairs": _COUNT,
    "data.batch_tokens": _COUNT,
    "data.batch_size": _COUNT,
    "data.noise_drop": _RATE,
    "data.noise_blank": _RATE,
    "data.noise_shuffle_distance": _NON_NEGATIVE,
    "data.subword_alpha": Bounds(0, 1, open_low=True),
    "data.subword_nbest_size": Bounds(-1),
    "data.mask_ratio": _RATE,
    "data.mask_span_lambda": _POSITIVE,
    "data.synthetic_ratio": _POSITIVE,
    "training.steps": _COUNT,
    "training.time_budget_minutes": _POSITIVE,
    "training.eval_every": _COUNT,
    "training.learning_rate": _POSITIVE,
    "training.warmup_steps": _NON_NEGATIVE,
    "training.decay_fraction": Bounds(0, 1, open_low=True),
    "training.weight_decay": _NON_NEGATIVE,
    "training.beta_2": _RATE,
    "training.label_smoothing": _RATE,
    "training.clip_norm": _POSITIVE,
    "training.gradient_accumulation_steps": _COUNT,
    "training.keep_checkpoints": _COUNT,
    "training.early_stopping_patience": _COUNT,
    "training.valid_sentences": _COUNT,
    "training.average_checkpoints": _COUNT,
    "decoding.beam_size": _COUNT,
    "decoding.alpha": _NON_NEGATIVE,
    "decoding.coverage_penalty": _NON_NEGATIVE,
    "decoding.n_best": _COUNT,
    "decoding.min_length": _NON_NEGATIVE,
    "decoding.temperature": _POSITIVE,
    "decoding.top_k": _NON_NEGATIVE,
    "decoding.top_p": Bounds(0, 1, open_low=True),
    "decoding.max_length": _COUNT,
    "decoding.batch_size": _COUNT,
    "decoding.examples": _NON_NEGATIVE,
    "export.version": _NON_NEGATIVE,
    "export.max_inputs_per_request": _COUNT,
    "export.max_input_bytes": _COUNT,
    "export.max_sentences_per_input": _COUNT,
    "tuning.max_trials": _COUNT,
    "tuning.steps_per_trial": _COUNT,
    "tuning.minutes_per_trial": _POSITIVE,
}


# Every field chosen by name, with the names it takes: the one list that the check below and
# the code that dispatches on the value (a test holds each registry to it) share. None is
# allowed where the field's type is Optional.
CHOICES = {
    "model.size": ("tiny", "small", "base", "big"),
    "model.activation": ("relu", "gelu", "silu", "swish"),
    "model.position_embedding": ("sinusoidal", "learned", "sinusoidal_halves"),
    "data.task": ("translation", "summarization", "denoising"),
    "data.dataset": ("libreoffice-help", "debian-descriptions", "manpages"),
    "data.format": ("tsv", "jsonl", "text"),
    "data.on_error": ("skip", "error"),
    "data.tokenizer": ("sentencepiece", "wordpiece"),
    "data.sentencepiece_model_type": ("unigram", "bpe"),
    "training.optimizer": ("adam", "adamw"),
    "training.schedule": ("inverse_sqrt", "linear", "cosine", "constant"),
    "training.precision": ("float32", "mixed_bfloat16", "mixed_float16", "auto"),
    "training.final_checkpoint": ("best", "last"),
    "training.strategy": ("default", "mirrored", "multi_worker", "tpu"),
    "decoding.strategy": ("beam", "greedy", "sampling"),
    "export.format": ("saved_model", "ctranslate2", "both"),
    "export.quantize": ("int8",),
    "tuning.tuner": ("bayesian", "hyperband", "random"),
    "tuning.objective": ("bleu", "chrf", "rouge1", "rouge2", "rougeLsum", "loss"),
}

# The objectives and metrics each task reports (tuning.objective must be one of its task's).
# The task's first is its main metric: the default objective, and what picks the best checkpoint.
TASK_METRICS = {
    "translation": ("bleu", "chrf", "loss"),
    "summarization": ("rougeLsum", "rouge1", "rouge2", "loss"),
    "denoising": ("bleu", "chrf", "loss"),
}


def field_value(config, key):
    """The value of `"section.field"` in `config`."""
    section, field = key.split(".")
    return getattr(getattr(config, section), field)


def check(config, where="config"):
    """Raises `ValueError` naming the first field of `config` of the wrong type, outside its
    `RANGES` or its `CHOICES`, or breaking a rule between fields (`_check_together`)."""
    nullable = {}
    for name in SECTIONS:
        section = getattr(config, name)
        for field, (kind, may_be_null) in _field_types(type(section)).items():
            _check_type(getattr(section, field), kind, may_be_null, f"{where}: {name}.{field}")
            nullable[f"{name}.{field}"] = may_be_null
    for key, names in CHOICES.items():
        value = field_value(config, key)
        if value is not None and value not in names:
            raise ValueError(f"{where}: {key}={value!r}; expected one of {', '.join(names)}"
                             + (" or null." if nullable[key] else "."))
    for key, bounds in RANGES.items():
        value = field_value(config, key)
        if value is not None and not bounds.admits(value):
            raise ValueError(f"{where}: {key}={value!r}; expected {bounds.describe(key)}.")
    _check_together(config, where)


def check_objective(config, where="config"):
    """Raises `ValueError` unless `tuning.objective` is a metric of `data.task` (checked when a
    search starts: a run's saved config keeps the tuning section it never used)."""
    objective, task = config.tuning.objective, config.data.task
    if objective not in (None, *TASK_METRICS[task]):
        raise ValueError(f"{where}: tuning.objective={objective!r} is not a metric of data.task="
                         f"{task!r}; expected one of {', '.join(TASK_METRICS[task])}.")


def check_training_data(config, where="config"):
    """Raises `ValueError` unless the config names training data (checked when training
    starts: a run imported from another toolkit has none, and translates without)."""
    data = config.data
    if data.dataset is None and not data.train_file:
        raise ValueError(
            f"{where}: data.dataset=null and no data.train_file; expected a bundled dataset "
            f"({', '.join(CHOICES['data.dataset'])}) or data.train_file (and valid_file, "
            "test_file).")


def _check_together(config, where):
    """The rules between fields."""
    model, data, training, decoding = config.model, config.data, config.training, config.decoding

    def refuse(text):
        raise ValueError(f"{where}: {text}")

    if decoding.strategy == "beam" and decoding.n_best > decoding.beam_size:
        refuse(f"decoding.n_best={decoding.n_best}; expected decoding.n_best <= "
               f"decoding.beam_size={decoding.beam_size}.")
    if training.average_checkpoints > training.keep_checkpoints:
        refuse(f"training.average_checkpoints={training.average_checkpoints} but only "
               f"training.keep_checkpoints={training.keep_checkpoints} are kept; expected "
               "training.average_checkpoints <= training.keep_checkpoints.")
    for key in ("data.split_sentences", "decoding.split_sentences"):
        if field_value(config, key) and data.task != "translation":
            refuse(f"{key}=true with data.task={data.task!r}: sentence splitting is for "
                   f"translation (a summary is of the whole source); expected {key}=false.")
    if training.time_budget_minutes and training.strategy == "multi_worker":
        # Each worker would read its own clock and could stop a step before the others,
        # leaving them waiting in an all-reduce.
        refuse(f"training.time_budget_minutes={training.time_budget_minutes} with "
               "training.strategy='multi_worker': workers must stop at the same step; expected "
               "training.time_budget_minutes=null (training.steps decides).")
    if (training.gradient_accumulation_steps or 1) > 1 and training.strategy != "default":
        # Keras accumulates in a tf.cond whose update branch all-reduces; under tf.distribute
        # that is a cross-replica merge inside control flow, which fails at the first step.
        refuse(f"training.gradient_accumulation_steps={training.gradient_accumulation_steps} "
               f"with training.strategy={training.strategy!r}: Keras' gradient accumulation "
               "runs on one device only; expected training.gradient_accumulation_steps=null "
               "(a larger data.batch_tokens is split over the replicas instead).")
    if data.max_source_length is not None and data.max_source_length > model.max_length:
        refuse(f"data.max_source_length={data.max_source_length}; expected at most "
               f"model.max_length={model.max_length}.")
    if decoding.max_length is not None and decoding.max_length > model.max_length:
        # The cache and (learned) position table hold model.max_length positions.
        refuse(f"decoding.max_length={decoding.max_length}; expected at most "
               f"model.max_length={model.max_length}.")
    if data.batch_size is None and data.batch_tokens is None:
        refuse("data.batch_tokens and data.batch_size are both null; expected one of them.")
    if data.batch_size is None and data.batch_tokens < model.max_length + 1:
        refuse(f"data.batch_tokens={data.batch_tokens} cannot hold one sequence of "
               f"model.max_length + 1 = {model.max_length + 1} tokens; expected "
               f"data.batch_tokens >= {model.max_length + 1}.")
    if data.subword_alpha is not None and data.tokenizer != "sentencepiece":
        refuse(f"data.subword_alpha={data.subword_alpha} with data.tokenizer="
               f"{data.tokenizer!r}: sampled segmentations are SentencePiece's; expected "
               "data.tokenizer='sentencepiece' or data.subword_alpha=null.")
    noise = [k for k in ("noise_drop", "noise_blank", "noise_shuffle_distance")
             if getattr(data, k)]
    if noise and data.source_prefix:
        # The noise would drop or move the prefix's tokens like words of the text.
        refuse(f"data.{noise[0]}={getattr(data, noise[0])} with data.source_prefix="
               f"{data.source_prefix!r}: source noise would move the prefix; expected no noise "
               "with a source prefix.")
    if model.share_embeddings and not data.joint_vocabulary:
        refuse("model.share_embeddings=true needs one vocabulary for source and target; "
               "expected data.joint_vocabulary=true or model.share_embeddings=false.")
    _check_augmentation(data, noise, refuse)


def _check_augmentation(data, noise, refuse):
    """The rules of denoising and of synthetic pairs."""
    text_dataset = data.dataset is not None and datasets.is_text(data.dataset)
    if data.synthetic_tag is not None:
        if not data.synthetic_file:
            refuse(f"data.synthetic_tag={data.synthetic_tag!r} without data.synthetic_file: the "
                   "tag marks synthetic sources; expected data.synthetic_file, or no tag.")
        if data.tokenizer != "sentencepiece" or len(data.synthetic_tag.split()) != 1:
            refuse(f"data.synthetic_tag={data.synthetic_tag!r} with data.tokenizer="
                   f"{data.tokenizer!r}: expected one word without spaces, and SentencePiece "
                   "(which keeps a reserved token whole).")
    if data.task != "denoising":
        if text_dataset:
            refuse(f"data.dataset={data.dataset!r} is monolingual text, with data.task="
                   f"{data.task!r}; expected a parallel dataset, or data.task='denoising'.")
        if data.format == "text":
            refuse(f"data.format='text' (one text a line, no pairs) with data.task={data.task!r}; "
                   "expected tsv or jsonl, or data.task='denoising'.")
        return
    reserved = [f"data.{k}" for k in ("synthetic_file", "source_prefix") if getattr(data, k)]
    if reserved or noise or data.reverse:
        field = (reserved or [f"data.{k}" for k in noise] or ["data.reverse"])[0]
        refuse(f"{field} with data.task='denoising': a denoising text is its own target and its "
               f"source is corrupted by the task itself; expected {field} unset.")
    if data.tokenizer != "sentencepiece":
        refuse(f"data.task='denoising' with data.tokenizer={data.tokenizer!r}: the mask token is "
               "a reserved token, kept whole in text by SentencePiece only; expected "
               "data.tokenizer='sentencepiece'.")


def _section_class(name):
    return {
        "model": ModelConfig,
        "data": DataConfig,
        "training": TrainingConfig,
        "decoding": DecodingConfig,
        "export": ExportConfig,
        "tuning": TuningConfig,
    }[name]


def _fields(cls):
    return {f.name: f for f in dataclasses.fields(cls)}


def _field_types(cls):
    """`{field: (type, nullable)}` of a section class, from its annotations."""
    types = {}
    for name, hint in typing.get_type_hints(cls).items():
        arguments = typing.get_args(hint)  # (int, NoneType) for Optional[int]
        nullable = type(None) in arguments
        types[name] = ([a for a in arguments if a is not type(None)][0] if nullable else hint,
                       nullable)
    return types


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a finite number",
               str: "a string", dict: "a mapping"}


def _check_type(value, kind, nullable, where):
    """Raises `ValueError` unless `value` is a `kind` (None too where `nullable`); a float
    must be finite."""
    if value is None and nullable:
        return
    if kind is float:
        good = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
            value)
    elif kind is int:
        good = isinstance(value, int) and not isinstance(value, bool)
    else:
        good = isinstance(value, kind)
    if not good:
        expected = _TYPE_NAMES[kind] + (" or null" if nullable else "")
        raise ValueError(f"{where} expects {expected}, got {value!r}.")


def _coerce(value, kind, nullable, where, from_text):
    """A value read from YAML (or, `from_text`, a `--set` string) as the field's `kind`: YAML
    reads 1e-3 (no dot) as a string and 2000.0 as a float; a string field takes the text of
    `--set` as it is (a file named 2024), null aside."""
    if from_text:
        text = value
        try:
            value = yaml.safe_load(text) if text != "" else ""
        except yaml.YAMLError:  # not YAML (">>deu<<"): the text itself
            value = text
        if kind is str and value is not None:
            value = text
    if kind in (int, float) and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if kind is int and isinstance(value, float) and math.isfinite(value) and value == int(value):
        value = int(value)
    _check_type(value, kind, nullable, where)
    return value


def from_dict(data, where="config", texts=None):
    """A `Config` from nested dicts, checked (`check`); unknown sections or fields raise
    `ValueError`. `texts`: `{section: {field, ...}}` whose values are `--set` strings."""
    data = data or {}
    texts = texts or {}
    unknown = set(data) - set(SECTIONS)
    if unknown:
        raise ValueError(
            f"{where}: unknown section(s) {sorted(unknown)}; expected {', '.join(SECTIONS)}."
        )
    sections = {}
    for name in SECTIONS:
        cls = _section_class(name)
        values = data.get(name) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{where}: section {name!r} must be a mapping, got {values!r}.")
        fields = _fields(cls)
        bad = set(values) - set(fields)
        if bad:
            raise ValueError(
                f"{where}: unknown field(s) {sorted(bad)} in section {name!r}; expected "
                f"{', '.join(fields)}."
            )
        types = _field_types(cls)
        sections[name] = cls(
            **{
                key: _coerce(value, *types[key], f"{where}: {name}.{key}",
                             from_text=key in texts.get(name, ()))
                for key, value in values.items()
            }
        )
    config = Config(**sections)
    check(config, where)
    return config


def apply_overrides(config, overrides):
    """Applies `["section.field=value", ...]` (values parsed as YAML) to a copy of `config`."""
    data, texts = config.to_dict(), {}
    for override in overrides or []:
        if "=" not in override or "." not in override.split("=", 1)[0]:
            raise ValueError(
                f"--set {override!r}: expected section.field=value, e.g. training.steps=2000."
            )
        key, value = override.split("=", 1)
        section, field = key.split(".", 1)
        if section not in data or field not in data[section]:
            raise ValueError(f"--set {override!r}: no field {key!r} in the config.")
        data[section][field] = value
        texts.setdefault(section, set()).add(field)
    return from_dict(data, where="--set", texts=texts)


def load(path=None, overrides=None):
    """Defaults, then the YAML file at `path` (or the packaged recipe of that name:
    `load("translation")`), then the `overrides`."""
    data = {}
    if path is not None:
        path = recipes.resolve(path)
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a mapping of sections, got {type(data).__name__}.")
    return apply_overrides(from_dict(data, where=str(path or "config")), overrides)


def save(config, path):
    """Writes the resolved config as YAML (atomically)."""
    atomic.write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
