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


def split_pairs(pairs):
    """Training pairs cut into sentence pairs where both sides have as many sentences.

    A pair whose source and target split into the same number n > 1 of sentences becomes n
    pairs, the i-th source sentence with the i-th target sentence; any other pair stays whole.
    Help texts and descriptions are translated sentence for sentence, so equal counts almost
    always mean aligned sentences (bundled LibreOffice help: 6,268 of the 6,947 pairs with
    several sentences). A model trained on them learns what `split` gives it to translate, and
    paragraphs too long for `model.max_length` still train as their sentences.

    Args:
        pairs: a list of `(source, target)` strings.

    Returns:
        A list of `(source, target)` strings, in the order of `pairs`.
    """
    if not pairs:
        return []
    sources = split(tf.constant([source for source, _ in pairs])).to_list()
    targets = split(tf.constant([target for _, target in pairs])).to_list()
    out = []
    for pair, source, target in zip(pairs, sources, targets):
        if len(source) > 1 and len(source) == len(target):
            out.extend((s.decode("utf-8"), t.decode("utf-8")) for s, t in zip(source, target))
        else:
            out.append(pair)
    return out
