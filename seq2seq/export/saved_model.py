"""A SavedModel that TensorFlow Serving loads as it is: raw strings in, translations out.

Tokenization (tensorflow-text), the cached search and detokenization are all in the graph;
the tokenizer models travel inside the SavedModel as resources, so nothing outside it is
needed to serve. The export is written to `OUT/<version>.partial` and renamed to
`OUT/<version>` when complete: a failed export never leaves a half-written version behind.
"""

import pathlib
import shutil

import tensorflow as tf

from seq2seq.decoding import get_strategy


class TranslationModule(tf.Module):
    """The serving module: a `Translator` and fixed decoding settings.

    Signatures:
        serving_default: `text` string `[batch]` -> `translations` string `[batch, n_best]`,
            `scores` float32 `[batch, n_best]`.
        translate_ids: `source_ids` int32 `[batch, length]` (0-padded, ending with the end id)
            -> `tokens` int32 `[batch, n_best, max_length]`, `scores` float32 `[batch, n_best]`.
    """

    def __init__(self, translator, decoding):
        super().__init__(name="translation")
        self.translator = translator
        self.model = translator.model
        self.source_tokenizer = translator.source_tokenizer
        self.target_tokenizer = translator.target_tokenizer
        options = {}
        if decoding.strategy == "beam":
            options = dict(beam_size=decoding.beam_size, alpha=decoding.alpha,
                           n_best=decoding.n_best)
        self.strategy = get_strategy(decoding.strategy, **options)
        self.max_length = decoding.max_length or translator.max_length

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        translations, scores, _ = self.translator.translate_graph(
            text, self.strategy, self.max_length
        )
        return {"translations": translations, "scores": scores}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="source_ids")])
    def serve_ids(self, source_ids):
        from seq2seq.decoding import generate

        result = generate(self.model, source_ids, self.strategy, self.max_length)
        return {"tokens": tf.convert_to_tensor(result.tokens),
                "scores": tf.convert_to_tensor(result.scores)}


def export_translator(translator, decoding, out_dir, version=1):
    """Writes the SavedModel to `out_dir/<version>` and returns that path."""
    out_dir = pathlib.Path(out_dir)
    final = out_dir / str(version)
    partial = out_dir / f"{version}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    module = TranslationModule(translator, decoding)
    tf.saved_model.save(
        module,
        str(partial),
        signatures={
            "serving_default": module.serve.get_concrete_function(),
            "translate_ids": module.serve_ids.get_concrete_function(),
        },
    )
    if final.exists():
        shutil.rmtree(final)
    partial.rename(final)
    return final
