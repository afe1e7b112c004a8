"""In-graph sentence splitting, so a paragraph is translated one sentence at a time.

Models trained on sentence-length segments (most of the bundled LibreOffice help: 90% of
its pairs are under 55 tokens) produce short, broken output for multi-sentence paragraphs.
Production MT splits documents into sentences before translating; doing it with TensorFlow
string ops keeps it inside the graph, so `Translator.translate()` and the exported SavedModel
split the same way.

The rule: a sentence ends at `.`, `!` or `?` (optionally followed by closing quotes or
brackets), then whitespace, then an uppercase letter (any script, RE2's `\\p{Lu}`). A number
or lowercase word after the full stop ("e.g. the", "version 7.5 is") does not split.
"""

import tensorflow as tf

# A control character that does not occur in text: the boundary marker between the two steps.
_BOUNDARY = "\x1f"
_SENTENCE_END = r"""([.!?]["'”’)\]]*)\s+(\p{Lu})"""


def split(texts):
    """`(batch,)` strings -> `(batch, (sentences))` ragged strings, each input's sentences.

    An input without a sentence boundary (an empty string included) is one sentence.

    >>> split(tf.constant(["Choose Edit. Then click OK.", "e.g. the cell"]))
    <tf.RaggedTensor [[b'Choose Edit.', b'Then click OK.'], [b'e.g. the cell']]>
    """
    texts = tf.strings.regex_replace(texts, _BOUNDARY, " ")
    marked = tf.strings.regex_replace(texts, _SENTENCE_END, "\\1" + _BOUNDARY + "\\2")
    return tf.strings.split(marked, _BOUNDARY)


def join(sentences):
    """The inverse for outputs: `(batch, (sentences), ...)` ragged -> `(batch, ...)` strings,
    each input's sentences joined by one space."""
    return tf.strings.reduce_join(sentences, axis=1, separator=" ")
