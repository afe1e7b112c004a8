"""Real datasets bundled with the project, for offline use.

    >>> from seq2seq import datasets
    >>> pairs = datasets.load("libreoffice-help", "en-de", split="test")
    >>> source, target = pairs[0]

Bundled copies live in `seq2seq/datasets/files/` as `NAME.CONFIG.SPLIT.jsonl.gz`, one
`{"source": ..., "target": ...}` object a line, or, for a monolingual dataset (`KIND = "text"`:
`manpages`), as `NAME.CONFIG.SPLIT.txt.gz`, one text a line, read with `load_texts`. `build()`
remakes them from upstream. Counts, licenses and provenance: `seq2seq/datasets/files/README.md`.
"""

import gzip
import json
import pathlib

from seq2seq.datasets import debian_descriptions, libreoffice_help, manpages, upstream

FILES = pathlib.Path(__file__).parent / "files"
BUILDERS = {module.NAME: module
            for module in (libreoffice_help, debian_descriptions, manpages)}
SPLITS = ("train", "valid", "test")


def _builder(name):
    if name not in BUILDERS:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {', '.join(BUILDERS)}.")
    return BUILDERS[name]


def path(name, config=None, split="train", directory=FILES):
    """Where the split of a dataset lives."""
    builder = _builder(name)
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {', '.join(SPLITS)}.")
    suffix = "txt" if is_text(name) else "jsonl"
    config = config or builder.DEFAULT_CONFIG
    return pathlib.Path(directory) / f"{name}.{config}.{split}.{suffix}.gz"


def is_text(name):
    """Whether dataset `name` is monolingual text (`load_texts`) rather than pairs (`load`)."""
    return getattr(_builder(name), "KIND", "pairs") == "text"


def load(name, config=None, split="train", directory=FILES):
    """The `(source, target)` string pairs of one split of a bundled (or built) dataset."""
    if is_text(name):
        raise ValueError(f"Dataset {name!r} is monolingual text, not pairs; expected a parallel "
                         f"dataset ({', '.join(n for n in BUILDERS if not is_text(n))}), or "
                         f"load_texts({name!r}).")
    with gzip.open(_existing(name, config, split, directory), "rt", encoding="utf-8") as lines:
        return [(row["source"], row["target"]) for row in map(json.loads, lines)]


def load_texts(name, config=None, split="train", directory=FILES):
    """The texts of one split of a bundled monolingual dataset (`manpages`)."""
    if not is_text(name):
        raise ValueError(f"Dataset {name!r} holds pairs; expected a monolingual one "
                         f"({', '.join(n for n in BUILDERS if is_text(n))}), or load({name!r}).")
    with gzip.open(_existing(name, config, split, directory), "rt", encoding="utf-8") as lines:
        return [line.rstrip("\n") for line in lines]


def _existing(name, config, split, directory):
    file = path(name, config, split, directory)
    if not file.exists():
        raise FileNotFoundError(
            f"{file} does not exist: dataset {name!r} config "
            f"{config or _builder(name).DEFAULT_CONFIG!r} is not bundled; make it with "
            f"seq2seq.datasets.build({name!r}, {config!r}, directory=...)."
        )
    return file


def build(name, config=None, directory=FILES, cache_dir=upstream.DEFAULT_CACHE, max_pairs=None):
    """Rebuilds a dataset from upstream and writes its splits; returns the pair counts.

    Args:
        name: a key of `BUILDERS`.
        config: e.g. "en-fr" for `libreoffice-help`; default the builder's default.
        directory: where to write the `.jsonl.gz` files.
        cache_dir: where upstream packages and indexes are downloaded.
        max_pairs: keep at most this many training pairs (a seeded-order prefix), to bound
            the size of a bundled copy; valid and test are always complete.
    """
    builder = _builder(name)
    config = config or builder.DEFAULT_CONFIG
    splits = builder.build(config, cache_dir=cache_dir)
    if max_pairs is not None:
        splits["train"] = splits["train"][:max_pairs]
    return write_splits(name, config, splits, directory)


def write_splits(name, config, splits, directory=FILES):
    """Writes `{split: pairs}` (or `{split: texts}`, a monolingual dataset) as the dataset's
    `.jsonl.gz` (`.txt.gz`) files; returns the counts."""
    counts = {}
    for split, pairs in splits.items():
        file = path(name, config, split, directory)
        file.parent.mkdir(parents=True, exist_ok=True)
        partial = file.with_suffix(".partial")
        # mtime=0: the same pairs always give the same bytes.
        with open(partial, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
            for item in pairs:
                if is_text(name):
                    line = item
                else:
                    line = json.dumps({"source": item[0], "target": item[1]}, ensure_ascii=False)
                out.write((line + "\n").encode("utf-8"))
        partial.replace(file)  # atomic: an interrupted build never leaves a truncated split
        counts[split] = len(pairs)
    return counts
