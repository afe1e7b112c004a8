"""Bundled datasets: counts, document-level splits without overlap, the builders' parsing."""

import pytest

from seq2seq import datasets
from seq2seq.datasets import debian_descriptions, libreoffice_help, manpages, upstream

EXPECTED = {
    ("libreoffice-help", "en-de"): {"train": 32782, "valid": 1454, "test": 935},
    ("debian-descriptions", "en"): {"train": 57546, "valid": 1811, "test": 1716},
}


@pytest.mark.parametrize("name, config", list(EXPECTED))
def test_bundled_splits_load_with_their_counts_and_do_not_overlap(name, config):
    splits = {split: datasets.load(name, config, split) for split in datasets.SPLITS}
    assert {s: len(p) for s, p in splits.items()} == EXPECTED[(name, config)]
    train, valid, test = (set(splits[s]) for s in datasets.SPLITS)
    assert not train & test and not train & valid and not valid & test
    # Not even a source: a model is never scored on a sentence it trained on.
    train_sources = {source for source, _ in train}
    assert not train_sources & {source for source, _ in valid | test}
    assert all(source and target and source != target for source, target in splits["test"])


def test_libreoffice_pairs_are_english_to_german():
    pairs = dict(datasets.load("libreoffice-help", split="test"))
    assert pairs["See also: Open"] == "Siehe auch: Open"
    assert pairs["XOR Operator"] == "Operator XOR"


def test_default_config_and_errors():
    assert datasets.load("libreoffice-help", split="valid") == datasets.load(
        "libreoffice-help", "en-de", "valid"
    )
    with pytest.raises(ValueError, match="'wmt'; expected one of libreoffice-help, debian"):
        datasets.load("wmt")
    with pytest.raises(ValueError, match="'dev'; expected one of train, valid, test"):
        datasets.load("libreoffice-help", split="dev")
    with pytest.raises(FileNotFoundError, match="'en-fr' is not bundled.*seq2seq.datasets.build"):
        datasets.load("libreoffice-help", "en-fr")


def test_help_page_parser_aligns_ids_and_skips_mac_variants(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(
        '<h1 id="hd_id1">Find Bar</h1>'
        '<p id="par_id2" class="paragraph">Use <span class="switchinline">'
        '<span hidden="true" class="MAC"><span class="keycode">Command</span></span>'
        '<span hidden="true"><span class="keycode">Ctrl</span></span></span> + F.</p>'
        '<p class="embedded">no id, not aligned</p>'
        '<p id="par_id2">Embedded &amp; repeated</p>'
    )
    assert libreoffice_help.page_paragraphs(page) == {
        "hd_id1": "Find Bar",
        "par_id2": "Use Ctrl + F.",
        "par_id2#2": "Embedded & repeated",
    }


def test_dedupe_and_split_keeps_each_pair_once_in_one_split():
    documents = [("b", [("x", "y"), ("same", "same")]), ("a", [("x", "y"), ("p", "q")])]
    splits = upstream.dedupe_and_split(documents)
    kept = [pair for pairs in splits.values() for pair in pairs]
    assert sorted(kept) == [("p", "q"), ("x", "y")]
    assert ("x", "y") in splits[upstream.split_of("a")]  # the first document in sorted order


def test_valid_and_test_pairs_with_a_training_source_are_dropped():
    splits = {"train": [("OK", "OK-Schaltfläche"), ("a", "b")],
              "valid": [("OK", "OK"), ("c", "d")], "test": [("OK", "Ja"), ("e", "f")]}
    assert upstream.drop_seen_sources(splits) == {
        "train": [("OK", "OK-Schaltfläche"), ("a", "b")], "valid": [("c", "d")],
        "test": [("e", "f")]}


def test_debian_description_parsing():
    index = (
        "Package: foo\nDescription-en: fast foo tool\n First paragraph\n spans lines.\n .\n"
        " Second one.\n\nPackage: bar\nDescription-en: bar\n"
    )
    stanzas = list(debian_descriptions.parse_stanzas(index))
    assert [s["Package"] for s in stanzas] == ["foo", "bar"]
    assert debian_descriptions.description_paragraphs(stanzas[0]["Description-en"]) == [
        "First paragraph spans lines.",
        "Second one.",
    ]


TEXT_EXPECTED = {
    ("manpages", "de"): {"train": 42694, "valid": 1967, "test": 1054},
    ("manpages", "en"): {"train": 13361, "valid": 367, "test": 982},
}


@pytest.mark.parametrize("name, config", list(TEXT_EXPECTED))
def test_bundled_monolingual_text_loads_with_its_counts_and_splits_apart(name, config):
    splits = {split: datasets.load_texts(name, config, split) for split in datasets.SPLITS}
    assert {s: len(t) for s, t in splits.items()} == TEXT_EXPECTED[(name, config)]
    train, valid, test = (set(splits[s]) for s in datasets.SPLITS)
    assert not train & test and not train & valid and not valid & test
    assert all(manpages.keep(text) for text in splits["test"])
    # Not the German of the parallel data's evaluation splits.
    help_targets = {t for split in ("valid", "test")
                    for _, t in datasets.load("libreoffice-help", "en-de", split)}
    assert not help_targets & train


def test_monolingual_and_parallel_datasets_are_read_by_their_own_loader():
    with pytest.raises(ValueError, match="'manpages' is monolingual text.*load_texts"):
        datasets.load("manpages", "de")
    with pytest.raises(ValueError, match="'libreoffice-help' holds pairs.*load"):
        datasets.load_texts("libreoffice-help")


def test_man_page_reader_keeps_running_text_and_drops_code_and_synopsis():
    page = r""".\" a comment
.TH LS 1 "2022" "GNU coreutils" "Dienstprogramme"
.SH BEZEICHNUNG
ls \- Verzeichnisinhalte auflisten
.SH ÜBERSICHT
\fBls\fP [\fI\,OPTION\/\fP]…
.SH BESCHREIBUNG
.PP
Auflistung von Informationen über die DATEIen. Die Einträge werden
alphabetisch sortiert, falls weder \fB\-cftuvSUX\fP noch
.B \-\-sort
angegeben wurden.
.nf
ls \-l /tmp
.fi
.TP
\fB\-a\fP, \fB\-\-all\fP
Einträge nicht ignorieren, die mit \(Fo.\(Fc beginnen
"""
    paragraphs = manpages.page_paragraphs(page)
    assert paragraphs == [
        "Auflistung von Informationen über die DATEIen. Die Einträge werden alphabetisch "
        "sortiert, falls weder -cftuvSUX noch --sort angegeben wurden.",
        "-a, --all",
        "Einträge nicht ignorieren, die mit «.» beginnen",
    ]
    assert manpages.sentences(paragraphs[0]) == [
        "Auflistung von Informationen über die DATEIen.",
        "Die Einträge werden alphabetisch sortiert, falls weder -cftuvSUX noch --sort "
        "angegeben wurden."]
    assert [manpages.keep(s) for s in ("-a, --all", "Zu kurz.", paragraphs[2],
                                       "Mit \\fB Resten")] == [False, False, True, False]
