"""In-graph sentence splitting: where a paragraph splits, and where it does not."""

import pytest
import tensorflow as tf

from seq2seq.text import sentences

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
