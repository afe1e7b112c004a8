"""From a `DataConfig` to pairs, tokenizers and datasets."""

import glob
import hashlib
import pathlib
import shutil

import numpy as np

from seq2seq import datasets
from seq2seq.data import readers
from seq2seq.data.denoising import MASK_TOKEN, corrupt, sentence_ends
from seq2seq.data.noise import word_starts
from seq2seq.data.pipeline import (
    Corruption,
    Resampling,
    SourceNoise,
    encode_pairs,
    make_dataset,
)
from seq2seq.text import sentences
from seq2seq.text.tokenizer import Tokenizer, train_tokenizer

TASKS = ("translation", "summarization", "denoising")


def read_pairs(data, path, format=None, on_error=None):
    """The `(source, target)` pairs of one file: TSV, or JSONL with `data.source_field` and
    `data.target_field`; `format` and `on_error` default to `data.format` and `data.on_error`.
    A text file (one text a line: denoising) gives `(text, text)` pairs."""
    format, on_error = format or data.format, on_error or data.on_error
    if format == "tsv":
        return readers.read_tsv(path, on_error=on_error)
    if format == "jsonl":
        return readers.read_jsonl(path, data.source_field, data.target_field, on_error=on_error)
    if format == "text":
        return [(text, text) for text in readers.read_texts(path, on_error=on_error)]
    raise ValueError(f"data.format={format!r}; expected tsv, jsonl or text.")


def _denoising_pairs(pairs):
    """`(text, text)` of each distinct text of `pairs` (both sides of a parallel split)."""
    texts = dict.fromkeys(text for pair in pairs for text in pair)
    return [(text, text) for text in texts]


def load_split(data, split):
    """The `(source, target)` pairs of one split, from the bundled dataset or the files.

    Denoising (`data.task`) pairs are `(text, text)`: the lines of a monolingual dataset or
    text file, or each distinct side of a parallel one. `data.reverse` swaps the sides. With
    `data.split_sentences`, training pairs are cut into sentence pairs
    (`seq2seq.text.sentences.split_pairs`); validation and test pairs stay as they are. The
    `data.synthetic_file` pairs (`synthetic_pairs`, already in the direction trained: not
    swapped) come after the real training pairs.
    """
    if data.task not in TASKS:
        raise ValueError(f"data.task={data.task!r}; expected one of {', '.join(TASKS)}.")
    if data.split_sentences and data.task != "translation":
        raise ValueError(f"data.split_sentences=true with data.task={data.task!r}: sentence "
                         "pairs are for translation; expected data.split_sentences=false.")
    if data.dataset and datasets.is_text(data.dataset):
        pairs = [(t, t) for t in datasets.load_texts(data.dataset, data.dataset_config, split)]
    elif data.dataset:
        pairs = datasets.load(data.dataset, data.dataset_config, split)
    else:
        pairs = [pair for file in split_files(data, split) for pair in read_pairs(data, file)]
    monolingual = datasets.is_text(data.dataset) if data.dataset else data.format == "text"
    if data.task == "denoising" and not monolingual:  # a parallel split: both sides are texts
        pairs = _denoising_pairs(pairs)
    if data.reverse:
        pairs = [(target, source) for source, target in pairs]
    if split == "train" and data.max_train_pairs:
        pairs = pairs[: data.max_train_pairs]
    if split == "train" and data.split_sentences:
        pairs = sentences.split_pairs(pairs)
    if split == "train" and data.synthetic_file:
        pairs = pairs + synthetic_pairs(data, len(pairs))
    return pairs


def split_files(data, split):
    """The files of `data.{split}_file`: one path, or a glob pattern (`mono/*.txt`) of several,
    in sorted order."""
    file = getattr(data, f"{split}_file")
    if not file:
        raise ValueError(f"data.{split}_file is not set and data.dataset is None.")
    if not glob.has_magic(str(file)):
        return [file]
    files = sorted(glob.glob(str(file)))
    if not files:
        raise FileNotFoundError(f"data.{split}_file={str(file)!r} matches no file; expected a "
                                "path, or a pattern of existing files.")
    return files


def synthetic_pairs(data, real):
    """`data.synthetic_ratio * real` pairs of `data.synthetic_file` (in an order seeded by
    `data.shuffle_seed`, cut, or repeated as often as needed; all of them once when the ratio
    is None), their sources tagged with `data.synthetic_tag`."""
    pairs = read_pairs(data, data.synthetic_file)
    ratio = data.synthetic_ratio
    count = len(pairs) if ratio is None else max(1, round(ratio * real))
    order = np.random.default_rng(data.shuffle_seed).permutation(len(pairs))
    picked = [pairs[i] for i in np.resize(order, count)]
    if data.synthetic_tag:
        picked = [(f"{data.synthetic_tag} {source}", target) for source, target in picked]
    return picked


def evaluation_pairs(data, split, source_tokenizer, limit=None):
    """The first `limit` pairs of a validation or test split, as decoded and scored: for
    `data.task: denoising`, each source is corrupted (`seq2seq.data.denoising.corrupt`, the
    training corruption, seeded by the split's name so that every validation sees the same
    copies) and written back as text, the masks as `<mask>`."""
    pairs = load_split(data, split)[:limit]
    if data.task != "denoising":
        return pairs
    ids = source_tokenizer.encode_sources([s for s, _ in pairs]).to_tensor()
    seed = [int(hashlib.sha256(split.encode()).hexdigest()[:8], 16), 0]
    corrupted = corrupt(ids, seed, _mask_id(source_tokenizer), _ends(data, source_tokenizer),
                        data.mask_ratio, data.mask_span_lambda)
    texts = [t.decode("utf-8") for t in source_tokenizer.detokenize(corrupted).numpy()]
    return [(text, target) for text, (_, target) in zip(texts, pairs)]


def _ends(data, tokenizer):
    return sentence_ends(tokenizer) if data.permute_sentences else None


def _mask_id(tokenizer):
    mask_id = tokenizer.token_id(MASK_TOKEN)
    if mask_id is None:
        raise ValueError(f"data.task='denoising': the run's vocabulary has no {MASK_TOKEN!r} "
                         "token; expected a tokenizer learned by a denoising run (which reserves "
                         "it), not one learned for another task.")
    return mask_id


def reserved_tokens(data):
    """The tokens the vocabulary reserves for `data`: the denoising mask, the synthetic tag."""
    return [*([MASK_TOKEN] if data.task == "denoising" else []),
            *([data.synthetic_tag] if data.synthetic_tag else [])]


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
        source, target = load_tokenizers(data, directory)
        if data.synthetic_tag and source.token_id(data.synthetic_tag) is None:
            raise ValueError(
                f"data.synthetic_tag={data.synthetic_tag!r} is not a token of the vocabulary in "
                f"{directory} (a fine-tune's is its base run's); expected a vocabulary learned "
                "with that tag (a run trained with it from the start), or no tag.")
        return source, target
    sample = train_pairs[: data.tokenizer_train_pairs]
    options = dict(
        kind=data.tokenizer,
        vocabulary_size=data.vocabulary_size,
        model_type=data.sentencepiece_model_type,
        reserved_tokens=reserved_tokens(data),
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
    if data.task == "denoising":
        noise = Corruption(_mask_id(source_tokenizer), _ends(data, source_tokenizer),
                           data.mask_ratio, data.mask_span_lambda)
    elif data.noise_drop or data.noise_blank or data.noise_shuffle_distance:
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
