"""LibreOffice help pages, aligned paragraph by paragraph between two languages.

Upstream: the Debian packages libreoffice-help-en-us and libreoffice-help-XX (MPL-2.0). Every
paragraph and heading of a help page carries a stable id (`par_id...`, `hd_id...`) that is the
same in every language, so pages align exactly on (page, id). Inline macOS variants (elements
of class "MAC", e.g. "Command" beside "Ctrl") are skipped; the default variant is kept.
"""

import html.parser
import pathlib
import re

from seq2seq.datasets import upstream

NAME = "libreoffice-help"
DEFAULT_CONFIG = "en-de"
LICENSE = "MPL-2.0"
SOURCE_LANGUAGE = "en"
# Debian package suffix of each help language.
PACKAGE_LANGUAGE = {"en": "en-us"}
HELP_DIRECTORY = {"en": "en-US"}
PARAGRAPH_ID = re.compile(r"^(par_id|hd_id)\w+$")
BLOCK_TAGS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "td", "li"}


class _ParagraphParser(html.parser.HTMLParser):
    """Collects `{id: text}` of the id-carrying block elements of one page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.paragraphs = {}
        self._stack = []  # (tag, paragraph id or None, is a MAC variant)
        self._current = None  # (id, [text pieces])

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("br", "img", "input", "meta", "link", "hr"):
            return
        element_id = attrs.get("id") or ""
        starts = (
            self._current is None and tag in BLOCK_TAGS and PARAGRAPH_ID.match(element_id)
        )
        mac = "MAC" in (attrs.get("class") or "").split()
        self._stack.append((tag, element_id if starts else None, mac))
        if starts:
            self._current = (element_id, [])

    def handle_endtag(self, tag):
        while self._stack:
            open_tag, paragraph_id, _ = self._stack.pop()
            if paragraph_id is not None:
                text = " ".join("".join(self._current[1]).split())
                key, occurrence = paragraph_id, 1
                while key in self.paragraphs:  # ids repeat when a section is embedded twice
                    occurrence += 1
                    key = f"{paragraph_id}#{occurrence}"
                self.paragraphs[key] = text
                self._current = None
            if open_tag == tag:
                break

    def handle_data(self, data):
        if self._current is not None and not any(mac for _, _, mac in self._stack):
            self._current[1].append(data)


def page_paragraphs(path):
    parser = _ParagraphParser()
    parser.feed(pathlib.Path(path).read_text(encoding="utf-8"))
    return parser.paragraphs


def _help_root(language, cache_dir):
    package = f"libreoffice-help-{PACKAGE_LANGUAGE.get(language, language)}"
    tree = upstream.download_package(package, cache_dir)
    return tree / "usr/share/libreoffice/help" / HELP_DIRECTORY.get(language, language)


def build(config=DEFAULT_CONFIG, cache_dir=upstream.DEFAULT_CACHE):
    """Downloads both help packages and returns `{split: [(source, target), ...]}`."""
    source_language, target_language = config.split("-")
    source_root = _help_root(source_language, cache_dir)
    target_root = _help_root(target_language, cache_dir)
    documents = []
    for source_page in sorted(source_root.rglob("*.html")):
        page = source_page.relative_to(source_root).as_posix()
        target_page = target_root / page
        if not target_page.exists():
            continue
        source, target = page_paragraphs(source_page), page_paragraphs(target_page)
        pairs = [
            (text, target[key])
            for key, text in source.items()
            if text and target.get(key)
        ]
        documents.append((page, pairs))
    return upstream.dedupe_and_split(documents)
