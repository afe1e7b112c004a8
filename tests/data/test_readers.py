"""Readers: formats, gzip, and every malformed-input case, under both policies."""

import gzip
import json
import logging
import re

import pytest

from seq2seq.data.readers import ReadReport, read_jsonl, read_parallel, read_tsv


def write(path, data):
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def test_tsv_plain_and_gzip(tmp_path):
    text = "Hello\tHallo\nTwo words\tZwei Wörter\n"
    plain = write(tmp_path / "a.tsv", text)
    zipped = tmp_path / "a.tsv.gz"
    zipped.write_bytes(gzip.compress(text.encode()))
    expected = [("Hello", "Hallo"), ("Two words", "Zwei Wörter")]
    assert read_tsv(plain) == expected
    assert read_tsv(zipped) == expected


def test_a_byte_order_mark_and_windows_line_ends_are_not_text(tmp_path):
    expected = [("Hello", "Hallo"), ("Two words", "Zwei Wörter")]
    assert read_tsv(write(tmp_path / "a.tsv", "\ufeffHello\tHallo\r\nTwo words\tZwei Wörter\r\n")) \
        == expected
    jsonl = '\ufeff{"source": "Hello", "target": "Hallo"}\r\n'
    assert read_jsonl(write(tmp_path / "a.jsonl", jsonl)) == expected[:1]
    assert read_parallel(write(tmp_path / "s.txt", "\ufeffHello\r\n"),
                         write(tmp_path / "t.txt", "\ufeffHallo\n")) == expected[:1]


def test_parallel_files(tmp_path):
    source = write(tmp_path / "s.txt", "one\ntwo\n")
    target = write(tmp_path / "t.txt", "eins\nzwei\n")
    assert read_parallel(source, target) == [("one", "eins"), ("two", "zwei")]
    short = write(tmp_path / "short.txt", "eins\n")
    with pytest.raises(ValueError, match="s.txt has 2 lines but .*short.txt has 1"):
        read_parallel(source, short)


def test_jsonl_with_configured_fields(tmp_path):
    rows = [{"description": "A long text.", "synopsis": "short"}]
    file = write(tmp_path / "d.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    assert read_jsonl(file, "description", "synopsis") == [("A long text.", "short")]
    with pytest.raises(ValueError, match="line 1 of .*d.jsonl lacks string fields 'source'"):
        read_jsonl(file, on_error="error")


MALFORMED = [
    (b"only one field\n", "has 1 field(s), expected 2 (source<TAB>target)"),
    (b"a\tb\tc\n", "has 3 field(s), expected 2"),
    (b"\tempty source\n", "has an empty source, expected text on both sides"),
    (b"empty target\t  \n", "has an empty target"),
    (b"caf\xe9\tbad utf-8\n", "is not valid UTF-8"),
    (("x" * 20_000 + "\tlong\n").encode(), "has a source of 20000 characters, expected at most"),
]


@pytest.mark.parametrize("line, reason", MALFORMED, ids=[r.split(",")[0] for _, r in MALFORMED])
def test_malformed_line_is_rejected_with_file_and_line(tmp_path, line, reason):
    file = write(tmp_path / "train.tsv", b"good\tgut\n" + line + b"fine\tgut\n")
    with pytest.raises(ValueError, match=f"line 2 of .*train.tsv {re.escape(reason)}"):
        read_tsv(file, on_error="error")


@pytest.mark.parametrize("line, reason", MALFORMED, ids=[r.split(",")[0] for _, r in MALFORMED])
def test_malformed_line_is_skipped_and_counted(tmp_path, caplog, line, reason):
    file = write(tmp_path / "train.tsv", b"good\tgut\n" + line + b"fine\tgut\n")
    report = ReadReport()
    with caplog.at_level(logging.WARNING):
        pairs = read_tsv(file, on_error="skip", report=report)
    assert pairs == [("good", "gut"), ("fine", "gut")]
    assert report.kept == 2 and report.num_skipped == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "skipped 1 malformed lines" in warnings[0] and "train.tsv: lines 2 " in warnings[0]


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="empty.tsv is empty, expected at least one line"):
        read_tsv(write(tmp_path / "empty.tsv", ""))
    with pytest.raises(FileNotFoundError, match="missing.tsv does not exist"):
        read_tsv(tmp_path / "missing.tsv")
    with pytest.raises(ValueError, match="holds no usable pair"):
        read_tsv(write(tmp_path / "bad.tsv", "no tab here\n"))


def test_unknown_policy(tmp_path):
    with pytest.raises(ValueError, match="on_error='ignore'; expected one of skip, error"):
        read_tsv(write(tmp_path / "a.tsv", "a\tb\n"), on_error="ignore")


def test_trailing_blank_lines_are_not_malformed_but_a_blank_line_within_is(tmp_path):
    report = ReadReport()
    pairs = read_tsv(write(tmp_path / "a.tsv", "a\tb\n\nc\td\n\n \r\n"), report=report)
    assert pairs == [("a", "b"), ("c", "d")]
    assert report.skipped == {str(tmp_path / "a.tsv"): [
        (2, "has 1 field(s), expected 2 (source<TAB>target)")]}
    jsonl = '{"source": "a", "target": "b"}\n\n'
    report = ReadReport()
    assert read_jsonl(write(tmp_path / "a.jsonl", jsonl), report=report) == [("a", "b")]
    assert report.num_skipped == 0
    with pytest.raises(ValueError, match=r"b.tsv is empty, expected at least one line"):
        read_tsv(write(tmp_path / "b.tsv", "\n\n"))


@pytest.mark.parametrize("data, reason", [
    (gzip.compress(b"a\tb\nc\td\n", mtime=0)[:-8], r"EOFError: Compressed file ended"),
    (b"plain text, not gzip\n", r"BadGzipFile: Not a gzipped file"),
])
def test_a_corrupt_gzip_file_is_named_with_what_was_expected(tmp_path, data, reason):
    path = write(tmp_path / "train.tsv.gz", data)
    with pytest.raises(ValueError, match=rf"train.tsv.gz cannot be read \({reason}.*\); "
                                         r"expected gzip-compressed UTF-8 text."):
        read_tsv(path)
