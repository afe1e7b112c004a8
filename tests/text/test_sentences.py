"""In-graph sentence splitting: where a paragraph splits, and where it does not."""

import pytest
import tensorflow as tf

from seq2seq import config as config_lib
from seq2seq.data.readers import read_tsv
from seq2seq.text import sentences
from seq2seq.training.inputs import load_split

CASES = [
    ("Choose Edit. Then click OK.", ["Choose Edit.", "Then click OK."]),
    ("Really? Yes! Done.", ["Really?", "Yes!", "Done."]),
    ('He wrote "Stop." Then he left.', ['He wrote "Stop."', "Then he left."]),
    ("(See below.) Über alles.", ["(See below.)", "Über alles."]),
    ("Use e.g. the Navigator.", ["Use e.g. the Navigator."]),  # lowercase after the stop
    ("Version 7.5 is out. 2 cells.", ["Version 7.5 is out. 2 cells."]),  # digits never start
    ("Min.Max. 3", ["Min.Max. 3"]),  # no space, no split
    ("A.  B.\tC", ["A.", "B.", "C"]),  # any whitespace, kept out of both sides
    ("No boundary at all", ["No boundary at all"]),
    ("", [""]),
    ("One\x1ftwo", ["One two"]),  # the internal marker in the input is only a space
]


@pytest.mark.parametrize("text, expected", CASES)
def test_split(text, expected):
    got = sentences.split(tf.constant([text])).to_list()[0]
    assert [s.decode() for s in got] == expected


def test_split_keeps_one_row_per_input_and_join_restores_single_spaced_text():
    texts = [text for text, _ in CASES]
    split = sentences.split(tf.constant(texts))
    assert split.shape[0] == len(texts)
    assert [len(row) for row in split.to_list()] == [len(e) for _, e in CASES]
    joined = [s.decode() for s in sentences.join(split).numpy()]
    assert joined == [" ".join(e) for _, e in CASES]


def test_join_keeps_trailing_dimensions():
    split = tf.ragged.constant([[["a1", "a2"], ["b1", "b2"]], [["c1", "c2"]]], ragged_rank=1)
    assert sentences.join(split).numpy().tolist() == [[b"a1 b1", b"a2 b2"], [b"c1", b"c2"]]


def test_split_pairs_cuts_only_pairs_whose_sides_have_as_many_sentences():
    pairs = [
        ("Open it. Then close it.", "Öffnen Sie es. Dann schließen Sie es."),  # 2 and 2
        ("One. Two.", "Eins, zwei."),  # 2 and 1: stays whole
        ("Short", "Kurz"),
    ]
    assert sentences.split_pairs(pairs) == [
        ("Open it.", "Öffnen Sie es."),
        ("Then close it.", "Dann schließen Sie es."),
        ("One. Two.", "Eins, zwei."),
        ("Short", "Kurz"),
    ]
    assert sentences.split_pairs([]) == []


def test_split_sentences_applies_to_training_pairs_only():
    fixture = "tests/fixtures/libreoffice-help.en-de.tsv"
    data = config_lib.DataConfig(dataset=None, train_file=fixture, valid_file=fixture,
                                 split_sentences=True)
    pairs = read_tsv(fixture)
    train = load_split(data, "train")
    assert train == sentences.split_pairs(pairs) and len(train) > len(pairs)
    assert load_split(data, "valid") == pairs


def test_sentence_splitting_is_refused_for_summarization(tmp_path):
    data = config_lib.DataConfig(task="summarization", dataset="debian-descriptions",
                                 split_sentences=True)
    with pytest.raises(ValueError, match="data.split_sentences=true with data.task='summ"):
        load_split(data, "train")
    with pytest.raises(ValueError, match="decoding.split_sentences=true with data.task='summ"):
        config_lib.load("summarization", ["decoding.split_sentences=true"])
