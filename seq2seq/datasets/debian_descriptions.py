"""Debian package descriptions: extended description -> one-line synopsis.

Upstream: the archive's Translation-en index (the English descriptions, Debian's main archive,
each package under its own license; the descriptions are the package maintainers' text, shipped
by the Debian archive) and the Packages index, for each binary package's source package, which
is the document the split is made on (so that `foo` and `foo-data`, whose descriptions are near
duplicates, never land in different splits). Fetched with
`apt-get update -o Dir::State::Lists=CACHE -o Acquire::Languages=en` and read with
`apt-helper cat-file`. Description paragraphs repeated more than `MAX_REPEATS` times across the
archive are boilerplate ("This package contains the documentation.") and are dropped.
"""

import collections
import pathlib

from seq2seq.datasets import upstream

NAME = "debian-descriptions"
DEFAULT_CONFIG = "en"
LICENSE = "Debian archive package descriptions (each under its package's license)"
MAX_REPEATS = 20
APT_HELPER = "/usr/lib/apt/apt-helper"


def parse_stanzas(text):
    """Yields the `{field: value}` stanzas of a Debian control-format index."""
    stanza, field = {}, None
    for line in text.splitlines():
        if not line.strip():
            if stanza:
                yield stanza
            stanza, field = {}, None
        elif line[0] in " \t" and field:
            stanza[field] += "\n" + line[1:]
        elif ":" in line:
            field, value = line.split(":", 1)
            stanza[field] = value.strip()
    if stanza:
        yield stanza


def description_paragraphs(description):
    """The extended description's paragraphs (after the synopsis line), whitespace-joined."""
    paragraphs, current = [], []
    for line in description.split("\n")[1:]:
        if line.strip() == ".":
            paragraphs.append(" ".join(current))
            current = []
        else:
            current.extend(line.split())
    paragraphs.append(" ".join(current))
    return [p for p in paragraphs if p]


def _indexes(cache_dir):
    lists = pathlib.Path(cache_dir) / "apt-lists"
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    upstream.run(
        [
            "apt-get", "update", "-o", f"Dir::State::Lists={lists}",
            "-o", "Acquire::Languages=en",
        ]
    )
    translations = sorted(lists.glob("*_main_i18n_Translation-en*"))
    packages = sorted(lists.glob("*_main_binary-*_Packages*"))
    if not translations:
        raise RuntimeError(f"apt-get update fetched no Translation-en index into {lists}.")
    read = lambda path: upstream.run([APT_HELPER, "cat-file", str(path)])  # noqa: E731
    return [read(p) for p in translations], [read(p) for p in packages]


def build(config=DEFAULT_CONFIG, cache_dir=upstream.DEFAULT_CACHE):
    """Fetches the indexes and returns `{split: [(description, synopsis), ...]}`."""
    if config != DEFAULT_CONFIG:
        raise ValueError(f"{NAME} has the config 'en' only, got {config!r}.")
    translations, packages = _indexes(cache_dir)
    source_of = {}
    for text in packages:
        for stanza in parse_stanzas(text):
            source = stanza.get("Source", stanza["Package"]).split()[0]
            source_of[stanza["Package"]] = source
    entries = {}
    for text in translations:
        for stanza in parse_stanzas(text):
            if "Description-en" in stanza:
                entries[stanza["Package"]] = stanza["Description-en"]
    paragraph_counts = collections.Counter(
        p for description in entries.values() for p in set(description_paragraphs(description))
    )
    documents = collections.defaultdict(list)
    for package, description in entries.items():
        synopsis = description.split("\n")[0].strip()
        body = [p for p in description_paragraphs(description) if paragraph_counts[p] <= MAX_REPEATS]
        if synopsis and body:
            documents[source_of.get(package, package)].append((" ".join(body), synopsis))
    return upstream.dedupe_and_split(documents.items())
