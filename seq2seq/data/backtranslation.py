"""Back-translation (Sennrich et al., 2016): target-language text made into training pairs.

A run trained in the reverse direction (target language -> source language) translates
monolingual target-language text; each translation and the text it came from make a synthetic
pair `(translation, text)`, whose target side is real. `seq2seq backtranslate` writes them as
TSV, and training mixes them with the real pairs (`data.synthetic_file`, `synthetic_ratio`,
`synthetic_tag`). Beam search gives the most likely translations; sampling gives noisier,
more varied ones, which helped more in Edunov et al. (2018) with large monolingual data.
"""

import time

from seq2seq import atomic

CHUNK = 1024  # lines translated between progress lines and checks of the time budget


def backtranslate(translator, texts, strategy=None, max_minutes=None, print_fn=print):
    """Synthetic `(translation, text)` pairs of `texts`, in their order.

    Args:
        translator: a `Translator` of the reverse direction (a run's `.translator`).
        texts: target-language texts.
        strategy: a decoding strategy or its name; default the translator's.
        max_minutes: stop after the chunk that passes this many minutes (the texts done so
            far are returned); None: translate all.

    Returns:
        `(pairs, skipped)`: the pairs, and how many texts gave an empty translation (left out:
        a pair needs text on both sides).
    """
    start, pairs, skipped = time.time(), [], 0
    for first in range(0, len(texts), CHUNK):
        chunk = texts[first:first + CHUNK]
        for text, translation in zip(chunk, translator.translate(chunk, strategy)):
            translation = " ".join(translation.split())  # no tab or newline in a TSV field
            if translation:
                pairs.append((translation, " ".join(text.split())))
            else:
                skipped += 1
        minutes = (time.time() - start) / 60
        print_fn(f"back-translated {first + len(chunk)} of {len(texts)} texts "
                 f"({minutes:.1f} min)")
        if max_minutes is not None and minutes >= max_minutes:
            break
    return pairs, skipped


def write_tsv(path, pairs):
    """`source<TAB>target` lines, written whole or not at all."""
    return atomic.write_text(path, "".join(f"{s}\t{t}\n" for s, t in pairs))
