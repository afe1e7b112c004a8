"""Monolingual text from the Debian man pages: German (`de`) and English (`en`).

Upstream: the Debian packages `manpages-de` (the German translations of the manpages-l10n
project, GPL-3+) and `manpages` (the Linux man-pages project's English pages, each under its
own free license). Software documentation, as the LibreOffice help is, and not translations of
it, so that it can stand for the target-language text a user has without a translation
(back-translation, denoising pretraining).

Each page's running text is taken: the roff requests are read just enough to keep the
paragraphs (`.PP`, `.TP`, `.SH`, ... end one; the tag of a `.TP` item is one of its own) and
drop what is not prose (no-fill blocks of code and examples, the synopsis, comments, tables);
font and character escapes become their text. Paragraphs are cut into sentences (at `.`, `!`
or `?` before whitespace and a capital letter), and a sentence is kept when it has 4 to 60
words, starts with a letter and holds no roff left over. A page is one document of the split
(`upstream.split_of`); each sentence is kept once.
"""

import gzip
import re

from seq2seq.datasets import upstream

NAME = "manpages"
KIND = "text"  # one text a line, no pairs
DEFAULT_CONFIG = "de"
LICENSE = "GPL-3+ (de); per page, free licenses (en)"
PACKAGE = {"de": "manpages-de", "en": "manpages"}
MAN_DIRECTORY = {"de": "usr/share/man/de", "en": "usr/share/man"}
# Sections whose text is not prose: a synopsis of the call, the names of the pages referred to.
SKIPPED_SECTIONS = {"ÜBERSICHT", "SYNOPSIS", "SIEHE AUCH", "SEE ALSO", "BEZEICHNUNG", "NAME",
                    "COPYRIGHT", "KOLOPHON", "COLOPHON", "ÜBERSETZUNG", "TRANSLATION"}
# Requests whose arguments are running text (in a font); every other request ends a paragraph.
FONT_REQUESTS = {"B", "I", "R", "BI", "BR", "IB", "IR", "RB", "RI", "SM", "SB"}
ESCAPES = {
    r"\-": "-", r"\(em": "—", r"\(en": "–", r"\(aq": "'", r"\(dq": '"', r"\(lq": "“",
    r"\(rq": "”", r"\(Fo": "«", r"\(Fc": "»", r"\(bu": "•", r"\(co": "©", r"\(ga": "`",
    r"\(ti": "~", r"\(ha": "^", r"\(rs": "\\", r"\e": "\\", r"\ ": " ", r"\~": " ",
    r"\&": "", r"\:": "", r"\/": "", r"\,": "", r"\%": "", r"\|": "", r"\^": "", r"\c": "",
}
_ESCAPE = re.compile(r"\\f(\(..|\[[^\]]*\]|.)|\\\*(\(..|\[[^\]]*\]|.)|\\[(]..|\\.")
_SENTENCE_END = re.compile(r"""(?<=[.!?])["'”’»)\]]*\s+(?=[A-ZÄÖÜ])""")


def _text(line):
    """A roff text line with its escapes replaced: fonts dropped, characters written."""
    return _ESCAPE.sub(lambda m: ESCAPES.get(m.group(0), ""), line)


def _arguments(rest):
    """The words of a font request (`.B "two words" three`) as text."""
    words = re.findall(r'"([^"]*)"|(\S+)', rest)
    return " ".join(quoted or plain for quoted, plain in words)


def page_paragraphs(source):
    """The prose paragraphs of one page's roff `source`."""
    paragraphs, current = [], []
    fill, section, tag = True, "", False  # tag: the next line is a .TP item's tag

    def end():
        if current:
            paragraphs.append(" ".join(" ".join(current).split()))
            current.clear()

    for line in source.splitlines():
        if line.startswith((".\\\"", "'\\\"", '.\\"')) or line.strip() in (".", ""):
            continue
        if line.startswith((".", "'")):
            request, _, rest = line[1:].strip().partition(" ")
            if request in FONT_REQUESTS:
                if fill and section not in SKIPPED_SECTIONS:
                    current.append(_text(_arguments(rest)))
                if tag:
                    tag = False
                    end()
                continue
            end()
            tag = request == "TP"
            if request in ("SH", "SS"):
                section = _text(_arguments(rest)).strip().upper()
            elif request in ("nf", "EX", "TS", "EQ"):
                fill = False
            elif request in ("fi", "EE", "TE", "EN"):
                fill = True
            continue
        if fill and section not in SKIPPED_SECTIONS:
            current.append(_text(line))
        if tag:  # an item's tag is a paragraph of its own, apart from its text
            tag = False
            end()
    end()
    return paragraphs


def sentences(paragraph):
    """A paragraph cut at `.`, `!` or `?` before whitespace and a capital letter."""
    return [s.strip() for s in _SENTENCE_END.split(paragraph) if s.strip()]


def keep(sentence):
    """A sentence of prose: 4 to 60 words, a letter first, no roff or markup left."""
    words = sentence.split()
    return (4 <= len(words) <= 60 and sentence[0].isalpha()
            and not re.search(r"[\\<>{}]|^\.|\t", sentence))


def build(config=DEFAULT_CONFIG, cache_dir=upstream.DEFAULT_CACHE):
    """Downloads the language's man pages; returns `{split: [text, ...]}`."""
    if config not in PACKAGE:
        raise ValueError(f"Unknown manpages config {config!r}; expected one of "
                         f"{', '.join(PACKAGE)}.")
    root = upstream.download_package(PACKAGE[config], cache_dir) / MAN_DIRECTORY[config]
    splits, seen = {"train": [], "valid": [], "test": []}, set()
    for page in sorted(root.glob("man*/*.gz")):
        with gzip.open(page, "rt", encoding="utf-8", errors="replace") as lines:
            source = lines.read()
        if source.lstrip().startswith(".so "):  # a link to another page
            continue
        split = upstream.split_of(f"{page.parent.name}/{page.name}")
        for paragraph in page_paragraphs(source):
            for sentence in sentences(paragraph):
                if keep(sentence) and sentence not in seen:
                    seen.add(sentence)
                    splits[split].append(sentence)
    return splits
