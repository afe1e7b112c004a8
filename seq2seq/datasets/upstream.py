"""Fetching upstream Debian material into a cache directory, and the document-level split.

The builders run `apt-get` (a Debian or Ubuntu machine with network access to its archive is
needed to rebuild; loading the bundled files needs neither).
"""

import hashlib
import os
import pathlib
import shutil
import subprocess

DEFAULT_CACHE = pathlib.Path(os.environ.get("SEQ2SEQ_CACHE", "~/.cache/seq2seq")).expanduser()

# Share of documents per split; the rest is train.
VALID_SHARE = 0.03
TEST_SHARE = 0.03


def run(command, cwd=None):
    """Runs `command`, raising an error with its output when it fails."""
    if shutil.which(command[0]) is None:
        raise RuntimeError(
            f"{command[0]} is not installed; building this dataset from upstream needs a "
            "Debian-based machine. The bundled copy loads without it."
        )
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(
            f"{' '.join(command)} failed with exit code {result.returncode}:\n{result.stderr}"
        )
    return result.stdout


def download_package(package, cache_dir):
    """`apt-get download` + `dpkg-deb -x` of `package` into `cache_dir`; returns the tree."""
    cache_dir = pathlib.Path(cache_dir)
    tree = cache_dir / "packages" / package
    if tree.exists():
        return tree
    debs = cache_dir / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    run(["apt-get", "download", package], cwd=debs)
    deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
    partial = tree.parent / f"{package}.partial"
    partial.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(partial, ignore_errors=True)
    run(["dpkg-deb", "-x", str(deb), str(partial)])
    partial.rename(tree)  # only a complete extraction is ever seen as cached
    return tree


def split_of(document):
    """Deterministic split of a document (a help page, a source package) from its name."""
    bucket = int(hashlib.sha256(document.encode("utf-8")).hexdigest()[:8], 16) / 16**8
    if bucket < TEST_SHARE:
        return "test"
    if bucket < TEST_SHARE + VALID_SHARE:
        return "valid"
    return "train"


def dedupe_and_split(documents):
    """`[(document, [(source, target), ...]), ...]` -> `{split: [(source, target), ...]}`.

    Each unique pair is kept once, in the split of the first document (in sorted order) that
    holds it, so that no exact pair crosses splits; pairs whose sides are identical are
    dropped; validation and test pairs whose source occurs in training are dropped
    (`drop_seen_sources`).
    """
    seen = set()
    splits = {"train": [], "valid": [], "test": []}
    for document, pairs in sorted(documents, key=lambda item: item[0]):
        split = split_of(document)
        for pair in pairs:
            if pair[0] == pair[1] or pair in seen:
                continue
            seen.add(pair)
            splits[split].append(pair)
    return drop_seen_sources(splits)


def drop_seen_sources(splits):
    """`splits` without the validation and test pairs whose source is a training source (short
    UI strings recur across help pages with another translation): a model scored on them
    would be scored partly on what it memorised."""
    train = {source for source, _ in splits["train"]}
    return {split: pairs if split == "train" else [p for p in pairs if p[0] not in train]
            for split, pairs in splits.items()}
