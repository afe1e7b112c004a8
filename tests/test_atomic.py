"""Files the toolkit writes are whole or untouched, never half written."""

import json

import pytest

from seq2seq import atomic


def test_a_failed_write_leaves_the_previous_file_as_it_was(tmp_path):
    history = tmp_path / "validation.jsonl"
    atomic.append_line(history, json.dumps({"step": 3}))
    atomic.append_line(history, json.dumps({"step": 6}))
    before = history.read_bytes()
    assert before == b'{"step": 3}\n{"step": 6}\n'
    with pytest.raises(UnicodeEncodeError):  # fails while the new text is being written
        atomic.append_line(history, '{"step": "\udcff"}')
    assert history.read_bytes() == before
    atomic.write_text(tmp_path / "test_metrics.json", "{}\n")
    assert (tmp_path / "test_metrics.json").read_text() == "{}\n"
