"""Files written whole or not at all: a crash leaves the previous version, never half of one."""

import pathlib


def write_text(path, text):
    """Writes `text` to `path` through a `.partial` file renamed over it (atomic on POSIX)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
    return path


def append_line(path, line):
    """Appends one line to `path`, rewriting the whole file atomically (for small logs such as
    validation.jsonl, which a crash must never leave with half a line)."""
    path = pathlib.Path(path)
    before = path.read_text(encoding="utf-8") if path.exists() else ""
    return write_text(path, before + line.rstrip("\n") + "\n")
