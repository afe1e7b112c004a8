"""From a `DataConfig` to pairs, tokenizers and datasets."""

import pathlib
import shutil

from seq2seq import datasets
from seq2seq.data import readers
from seq2seq.data.noise import word_starts
from seq2seq.data.pipeline import Resampling, SourceNoise, encode_pairs, make_dataset
from seq2seq.text import sentences
from seq2seq.text.tokenizer import Tokenizer, train_tokenizer

TASKS = ("translation", "summarization")


def read_pairs(data, path, format=None, on_error=None):
    """The `(source, target)` pairs of one file: TSV, or JSONL with `data.source_field` and
    `data.target_field`; `format` and `on_error` default to `data.format` and `data.on_error`."""
    format, on_error = format or data.format, on_error or data.on_error
    if format == "tsv":
        return readers.read_tsv(path, on_error=on_error)
    if format == "jsonl":
        return readers.read_jsonl(path, data.source_field, data.target_field, on_error=on_error)
    raise ValueError(f"data.format={format!r}; expected tsv or jsonl.")


def load_split(data, split):
    """The `(source, target)` pairs of one split, from the bundled dataset or the files.

    With `data.split_sentences`, training pairs are cut into sentence pairs
    (`seq2seq.text.sentences.split_pairs`); validation and test pairs stay as they are.
    """
    if data.task not in TASKS:
        raise ValueError(f"data.task={data.task!r}; expected one of {', '.join(TASKS)}.")
    if data.split_sentences and data.task != "translation":
        raise ValueError(f"data.split_sentences=true with data.task={data.task!r}: sentence "
                         "pairs are for translation; expected data.split_sentences=false.")
    if data.dataset:
        pairs = datasets.load(data.dataset, data.dataset_config, split)
    else:
        file = getattr(data, f"{split}_file")
        if not file:
            raise ValueError(f"data.{split}_file is not set and data.dataset is None.")
        pairs = read_pairs(data, file)
    if split == "train" and data.max_train_pairs:
        pairs = pairs[: data.max_train_pairs]
    if split == "train" and data.split_sentences:
        pairs = sentences.split_pairs(pairs)
    return pairs


def load_tokenizers(data, directory):
    """The `(source, target)` tokenizers saved in `directory` (a run's `tokenizer/`), the
    source's with `data.source_prefix`."""
    directory = pathlib.Path(directory)
    source_dir, target_dir = directory / "source", directory / "target"
    if not (source_dir / "tokenizer.json").exists():
        raise FileNotFoundError(
            f"{directory} holds no tokenizer ({source_dir / 'tokenizer.json'} is missing); "
            "expected the tokenizer/ folder that `seq2seq train` writes into a run directory."
        )
    source = Tokenizer.load(source_dir)
    # One vocabulary may still segment each side with its own model (an OPUS-MT model's
    # source.spm and target.spm): the target's is read unless its files are the source's.
    same = data.joint_vocabulary and (
        not (target_dir / "tokenizer.json").exists()
        or directory_files(source_dir) == directory_files(target_dir))
    target = source if same else Tokenizer.load(target_dir)
    return source.with_source_prefix(data.source_prefix), target


def directory_files(directory):
    """`{relative path: bytes}` of the files under `directory` (tokenizer folders compared)."""
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(pathlib.Path(directory).rglob("*")) if p.is_file()}


def tokenizers(data, train_pairs, directory):
    """Loads the run's tokenizers from `directory`, or learns and saves them (atomically)."""
    directory = pathlib.Path(directory)
    if (directory / "source" / "tokenizer.json").exists():
        return load_tokenizers(data, directory)
    sample = train_pairs[: data.tokenizer_train_pairs]
    options = dict(
        kind=data.tokenizer,
        vocabulary_size=data.vocabulary_size,
        model_type=data.sentencepiece_model_type,
    )
    if data.joint_vocabulary:
        source = target = train_tokenizer([s for p in sample for s in p], **options)
    else:
        source = train_tokenizer([s for s, _ in sample], **options)
        target = train_tokenizer([t for _, t in sample], **options)
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    source.save(partial / "source")
    target.save(partial / "target")
    partial.rename(directory)
    return source.with_source_prefix(data.source_prefix), target


def describe_split(data, split):
    """Where a split comes from, for messages: its file or the bundled dataset."""
    if data.dataset:
        return f"split {split!r} of dataset {data.dataset!r}"
    return str(getattr(data, f"{split}_file"))


def train_dataset(data, train_pairs, source_tokenizer, target_tokenizer, max_length, skip=0,
                  static_shapes=False, print_fn=print):
    """The repeated, shuffled, bucketed training batches, after `skip` consumed batches.

    Pairs longer than `max_length` tokens are dropped and their share printed; a split with
    none left is refused (an empty epoch would repeat forever)."""
    sources, targets, dropped, kept = encode_pairs(
        train_pairs, source_tokenizer, target_tokenizer, max_length, data.max_source_length,
        return_kept=True,
    )
    limit = (f"model.max_length={max_length} tokens"
             + (" (targets; sources cut to data.max_source_length)"
                if data.max_source_length else ""))
    if dropped == len(train_pairs):
        raise ValueError(
            f"{describe_split(data, 'train')}: all {dropped} training pairs are longer than "
            f"{limit}, none is left to train on; expected pairs within the limit, or a larger "
            "model.max_length (or data.max_source_length to cut long sources)."
        )
    if dropped:
        print_fn(f"dropped {dropped} of {len(train_pairs)} training pairs "
                 f"({100 * dropped / len(train_pairs):.1f}%) longer than {limit}")
    noise = None
    if data.noise_drop or data.noise_blank or data.noise_shuffle_distance:
        noise = SourceNoise(word_starts(source_tokenizer), data.noise_drop, data.noise_blank,
                            data.noise_shuffle_distance)
    resample = None
    if data.subword_alpha is not None:
        kept_pairs = [pair for pair, keep in zip(train_pairs, kept.numpy()) if keep]
        sample = lambda tokenizer: tokenizer.sampled(  # noqa: E731
            data.subword_alpha, data.subword_nbest_size)
        resample = Resampling([s for s, _ in kept_pairs], [t for _, t in kept_pairs],
                              sample(source_tokenizer),
                              sample(target_tokenizer) if data.subword_targets else None,
                              data.max_source_length)
    dataset = make_dataset(
        sources,
        targets,
        batch_tokens=data.batch_tokens if not data.batch_size else None,
        batch_size=data.batch_size,
        max_length=max_length,
        seed=data.shuffle_seed,
        repeat=True,
        static_shapes=static_shapes or data.static_shapes,
        noise=noise,
        resample=resample,
    )
    return dataset.skip(skip) if skip else dataset
