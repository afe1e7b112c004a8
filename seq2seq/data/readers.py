"""Readers of parallel text: TSV, two aligned plain-text files, JSONL; and of monolingual text,
one text a line; gzip allowed.

Files are read and checked up front, before training starts, so that a malformed line is
never discovered in the middle of an epoch. What happens to one is the `on_error` policy:
"skip" drops it, counts it and logs one summary warning naming the file and line numbers;
"error" raises a `ValueError` naming the file, the line and what was expected.
"""

import gzip
import json
import logging
import pathlib
import zlib

logger = logging.getLogger(__name__)

ON_ERROR = ("skip", "error")
# A line longer than this (in characters) is malformed: far beyond any max_length in tokens.
DEFAULT_MAX_CHARACTERS = 10_000


class ReadReport:
    """What a reader kept and skipped, per file."""

    def __init__(self):
        self.kept = 0
        self.skipped = {}  # file -> [(line, reason), ...]

    @property
    def num_skipped(self):
        return sum(len(lines) for lines in self.skipped.values())

    def summary(self, shown=10):
        parts = []
        for file, lines in self.skipped.items():
            numbers = ", ".join(str(line) for line, _ in lines[:shown])
            more = f" and {len(lines) - shown} more" if len(lines) > shown else ""
            reasons = sorted({reason for _, reason in lines})
            parts.append(f"{file}: lines {numbers}{more} ({'; '.join(reasons)})")
        return f"skipped {self.num_skipped} malformed lines: " + " | ".join(parts)


class _Checker:
    def __init__(self, on_error, max_characters, report):
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error={on_error!r}; expected one of {', '.join(ON_ERROR)}.")
        self.on_error = on_error
        self.max_characters = max_characters
        self.report = report

    def bad(self, file, line, reason):
        if self.on_error == "error":
            raise ValueError(f"line {line} of {file} {reason}")
        self.report.skipped.setdefault(str(file), []).append((line, reason))

    def pair(self, file, line, source, target):
        """The pair, or None after reporting it as malformed."""
        for side, text in (("source", source), ("target", target)):
            if not text.strip():
                return self.bad(file, line, f"has an empty {side}, expected text on both sides")
            if len(text) > self.max_characters:
                return self.bad(
                    file,
                    line,
                    f"has a {side} of {len(text)} characters, expected at most "
                    f"{self.max_characters}",
                )
        self.report.kept += 1
        return source.strip(), target.strip()


def _lines(path):
    """`(line number, text or None if not UTF-8)` of a plain or gzip file; blank lines at its
    end (an editor's final newline, or a few) are not lines of data."""
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist.")
    opener = gzip.open if path.suffix == ".gz" else open
    blank = []  # blank lines held back until a line of text shows they are not trailing
    has_text = False
    try:
        with opener(path, "rb") as raw:
            for number, data in enumerate(raw, start=1):
                if number == 1:  # a byte order mark (Windows editors, spreadsheet exports)
                    data = data.removeprefix(b"\xef\xbb\xbf")
                try:
                    text = data.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError:
                    text = None
                if text is not None and not text.strip():
                    blank.append((number, text))
                    continue
                yield from blank
                blank.clear()
                has_text = True
                yield number, text
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        kind = "gzip-compressed " if opener is gzip.open else ""
        raise ValueError(f"{path} cannot be read ({type(error).__name__}: {error}); expected "
                         f"{kind}UTF-8 text.") from None
    if not has_text:
        raise ValueError(f"{path} is empty, expected at least one line of text.")


def _text_lines(path, check):
    """`(line number, text)` of the UTF-8 lines; the others are reported to `check`."""
    for number, text in _lines(path):
        if text is None:
            check.bad(path, number, "is not valid UTF-8")
            continue
        yield number, text


def _finish(pairs, report, path):
    if report.num_skipped:
        logger.warning(report.summary())
    if not pairs:
        raise ValueError(f"{path} holds no usable pair ({report.num_skipped} lines skipped).")
    return pairs


def read_tsv(path, on_error="skip", max_characters=DEFAULT_MAX_CHARACTERS, report=None):
    """`source<TAB>target` lines -> `[(source, target), ...]`."""
    report = report or ReadReport()
    check = _Checker(on_error, max_characters, report)
    pairs = []
    for number, text in _text_lines(path, check):
        fields = text.split("\t")
        if len(fields) != 2:
            check.bad(
                path, number, f"has {len(fields)} field(s), expected 2 (source<TAB>target)"
            )
            continue
        pair = check.pair(path, number, *fields)
        if pair:
            pairs.append(pair)
    return _finish(pairs, report, path)


def read_parallel(
    source_path, target_path, on_error="skip", max_characters=DEFAULT_MAX_CHARACTERS, report=None
):
    """Two files, line `i` of one translating line `i` of the other."""
    report = report or ReadReport()
    check = _Checker(on_error, max_characters, report)
    sources, targets = list(_lines(source_path)), list(_lines(target_path))
    if len(sources) != len(targets):
        raise ValueError(
            f"{source_path} has {len(sources)} lines but {target_path} has {len(targets)}; "
            "parallel files must have the same number of lines."
        )
    pairs = []
    for (number, source), (_, target) in zip(sources, targets):
        if source is None or target is None:
            check.bad(source_path if source is None else target_path, number, "is not valid UTF-8")
            continue
        pair = check.pair(f"{source_path}|{target_path}", number, source, target)
        if pair:
            pairs.append(pair)
    return _finish(pairs, report, source_path)


def read_jsonl(
    path,
    source_field="source",
    target_field="target",
    on_error="skip",
    max_characters=DEFAULT_MAX_CHARACTERS,
    report=None,
):
    """One JSON object a line, with the two fields named."""
    report = report or ReadReport()
    check = _Checker(on_error, max_characters, report)
    pairs = []
    for number, text in _text_lines(path, check):
        try:
            row = json.loads(text)
        except json.JSONDecodeError as error:
            check.bad(path, number, f"is not valid JSON ({error.msg})")
            continue
        if not isinstance(row, dict) or not all(
            isinstance(row.get(f), str) for f in (source_field, target_field)
        ):
            check.bad(
                path,
                number,
                f"lacks string fields {source_field!r} and {target_field!r}, expected an "
                f'object like {{"{source_field}": "...", "{target_field}": "..."}}',
            )
            continue
        pair = check.pair(path, number, row[source_field], row[target_field])
        if pair:
            pairs.append(pair)
    return _finish(pairs, report, path)


def read_texts(path, on_error="skip", max_characters=DEFAULT_MAX_CHARACTERS, report=None):
    """One text a line (monolingual text: denoising, back-translation) -> `[text, ...]`."""
    report = report or ReadReport()
    check = _Checker(on_error, max_characters, report)
    texts = []
    for number, text in _text_lines(path, check):
        if not text.strip():
            check.bad(path, number, "is blank, expected one text a line")
        elif len(text) > max_characters:
            check.bad(path, number, f"has {len(text)} characters, expected at most "
                      f"{max_characters}")
        else:
            report.kept += 1
            texts.append(text.strip())
    return _finish(texts, report, path)
