"""`translate()`: raw strings in, strings out, through the in-graph tokenizers.

Tokenization, search and detokenization form one TensorFlow function (`translate_graph`), the
same one the SavedModel export serves, so `translate()` and a served model agree.
"""

import tensorflow as tf

from seq2seq.decoding import generate, get_strategy, strategy_options
from seq2seq.text import sentences
from seq2seq.text.tokenizer import END_ID, START_ID


class Translator:
    """A trained model with its tokenizers.

    Args:
        model: a `Transformer`.
        source_tokenizer, target_tokenizer: `seq2seq.text.tokenizer.Tokenizer`s.
        max_source_length: sources are cut to this many tokens (end id included); longer
            input, even megabytes of it, is truncated, never rejected. Default: the model's
            `max_length`.
        max_length: default longest output, start id included. Default: the model's.
        split_sentences: translate each input one sentence at a time and join the
            translations with a space (`seq2seq.text.sentences`); for models trained on
            sentences that are given paragraphs. Length limits then hold per sentence.

    Example:
    >>> translator = Translator(model, tokenizer, tokenizer)
    >>> translator.translate(["Choose Tools - Options."], beam_size=4)
    ['Wählen Sie Extras - Optionen.']
    """

    def __init__(
        self, model, source_tokenizer, target_tokenizer, max_source_length=None, max_length=None,
        split_sentences=False,
    ):
        self.model = model
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.max_source_length = max_source_length or model.max_length
        self.max_length = max_length or model.max_length
        self.split_sentences = split_sentences
        self._functions = {}

    @classmethod
    def for_config(cls, model, source_tokenizer, target_tokenizer, config):
        """The translator of a run: its source cut (`data.max_source_length`), output length
        (`decoding.max_length`, else `model.max_length`) and sentence splitting."""
        return cls(model, source_tokenizer, target_tokenizer,
                   max_source_length=config.data.max_source_length,
                   max_length=config.decoding.max_length or config.model.max_length,
                   split_sentences=config.decoding.split_sentences)

    def decode(self, sources, decoding, n_best=1, return_scores=False):
        """`translate(sources)` with a `DecodingConfig`'s strategy and settings (see
        `translate` for `n_best` and `return_scores`)."""
        name, options = strategy_options(decoding, n_best=n_best)
        return self.translate(sources, strategy=name, batch_size=decoding.batch_size,
                              return_scores=return_scores, **options)

    def with_model(self, model):
        """A translator with the same tokenizers and settings around another model."""
        return Translator(model, self.source_tokenizer, self.target_tokenizer,
                          max_source_length=self.max_source_length, max_length=self.max_length,
                          split_sentences=self.split_sentences)

    def encode_sources(self, texts):
        """`(batch,)` strings -> `(batch, length)` int32 ids ending with the end id, 0-padded."""
        return self.source_tokenizer.encode_sources(texts, self.max_source_length).to_tensor()

    def score_graph(self, sources, targets):
        """Teacher-forced log-probabilities of `targets` given `sources`, as TensorFlow ops.

        Sources are encoded as for translation; each target is tokenized as in training, cut
        to `max_length - 1` tokens (the model reads `max_length` positions: the start id and
        those tokens) and followed by the end id, whose log-probability counts too.

        Returns:
            `(totals, token_log_probs, lengths)`: float32 `(batch,)` sums, float32
            `(batch, length)` per token (0 past each target's end) and int32 `(batch,)` token
            counts (the end id included).
        """
        ids = self.target_tokenizer.tokenize(targets)[:, : self.max_length - 1]
        return self.score_ids(self.encode_sources(sources), ids)

    def score_ids(self, source_ids, ids):
        """`score_graph` on ids: `source_ids` `(batch, length)` as `encode_sources` gives
        them, `ids` ragged `(batch, None)` target ids without start or end id."""
        rows = ids.nrows()
        target_in = tf.concat([tf.fill([rows, 1], START_ID), ids], axis=1).to_tensor()
        target_out = tf.concat([ids, tf.fill([rows, 1], END_ID)], axis=1)
        lengths = tf.cast(target_out.row_lengths(), tf.int32)
        logits = self.model((source_ids, target_in), training=False)
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
        chosen = tf.gather(log_probs, target_out.to_tensor(), batch_dims=2)
        chosen = tf.where(tf.sequence_mask(lengths, tf.shape(chosen)[1]), chosen, 0.0)
        return tf.reduce_sum(chosen, axis=1), chosen, lengths

    def score(self, sources, targets, batch_size=64):
        """Teacher-forced log-probabilities of translations (see `score_graph`).

        Returns:
            One `(total, [log-probability of each target token, the end id last])` per pair.
        """
        sources, targets = list(sources), list(targets)
        if len(sources) != len(targets):
            raise ValueError(f"{len(sources)} sources but {len(targets)} targets; expected "
                             "one target per source.")
        results = []
        for start in range(0, len(sources), batch_size):
            batch = (tf.constant(sources[start : start + batch_size]),
                     tf.constant(targets[start : start + batch_size]))
            totals, tokens, lengths = self._call(self._score_function, *batch)
            results += [(float(total), row[:length].tolist()) for total, row, length in
                        zip(totals.numpy(), tokens.numpy(), lengths.numpy())]
        return results

    def _call(self, get_function, *args):
        """`get_function()(*args)`, traced again once if a tokenizer resource was freed by
        `tf.random.set_seed` (see `Tokenizer.reset`)."""
        try:
            return get_function()(*args)
        except tf.errors.NotFoundError:
            self.source_tokenizer.reset()
            self.target_tokenizer.reset()
            self._functions.clear()
            return get_function()(*args)

    def _score_function(self):
        if "score" not in self._functions:
            spec = tf.TensorSpec([None], tf.string)
            self._functions["score"] = tf.function(self.score_graph,
                                                   input_signature=[spec, spec])
        return self._functions["score"]

    def translate_graph(self, texts, strategy, max_length, length_limit=None):
        """The whole translation as TensorFlow ops.

        `length_limit` (a scalar tensor <= `max_length`) ends the search earlier inside the
        `max_length` buffer (see `generate`). With `split_sentences`, the i-th of the n-best
        of an input joins the i-th best of each of its sentences, scored by their sum.

        Returns:
            `(translations, scores)`: strings `(batch, n_best)` and float32 `(batch, n_best)`.
        """
        if not self.split_sentences:
            return self._translate_sentences(texts, strategy, max_length, length_limit)
        split = sentences.split(texts)
        strings, scores = self._translate_sentences(
            split.flat_values, strategy, max_length, length_limit
        )
        strings = tf.RaggedTensor.from_row_splits(strings, split.row_splits)
        scores = tf.RaggedTensor.from_row_splits(scores, split.row_splits)
        return sentences.join(strings), tf.reduce_sum(scores, axis=1)

    def _translate_sentences(self, texts, strategy, max_length, length_limit):
        source_ids = self.encode_sources(texts)
        result = generate(self.model, source_ids, strategy, max_length,
                          length_limit=length_limit)
        tokens = tf.convert_to_tensor(result.tokens)
        batch, n_best = tf.shape(tokens)[0], tf.shape(tokens)[1]
        strings = self.target_tokenizer.detokenize(tf.reshape(tokens, (batch * n_best, -1)))
        return tf.reshape(strings, (batch, n_best)), tf.convert_to_tensor(result.scores)

    def _function(self, strategy_name, max_length, options):
        key = (strategy_name, max_length, tuple(sorted(options.items())))
        if key not in self._functions:
            strategy = get_strategy(strategy_name, **options)

            @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
            def run(texts):
                return self.translate_graph(texts, strategy, max_length)

            self._functions[key] = run
        return self._functions[key]

    def translate(
        self,
        texts,
        strategy="beam",
        beam_size=4,
        alpha=0.6,
        n_best=1,
        coverage_penalty=0.0,
        min_length=0,
        max_length=None,
        batch_size=64,
        return_scores=False,
        **sampling_options,
    ):
        """Translates a list of strings.

        Args:
            texts: source strings.
            strategy: "beam", "greedy" or "sampling".
            beam_size, alpha, n_best, coverage_penalty: beam search settings (see
                `BeamSearch`).
            min_length: fewest output tokens before the end id.
            max_length: longest output (start id included); default the translator's.
            batch_size: sentences per call of the model. Sentences are batched in order of
                length (and returned in input order), so a batch pads little and its
                hypotheses end at about the same step.
            return_scores: return `(text, score)` pairs.
            **sampling_options: `temperature`, `top_k`, `top_p`, `seed` for sampling.

        Returns:
            One string per input; with `n_best > 1` a list of `n_best` strings per input; with
            `return_scores` `(string, score)` tuples in place of strings.
        """
        options = {"min_length": min_length, **sampling_options}
        if strategy == "beam":
            options.update(beam_size=beam_size, alpha=alpha, n_best=n_best,
                           coverage_penalty=coverage_penalty)
        texts = list(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        outputs = [None] * len(texts)
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            batch = tf.constant([texts[i] for i in rows])
            strings, scores = self._call(
                lambda: self._function(strategy, max_length or self.max_length, options), batch)
            for i, row_strings, row_scores in zip(rows, strings.numpy(), scores.numpy()):
                row = [s.decode("utf-8") for s in row_strings]
                if return_scores:
                    row = list(zip(row, row_scores.tolist()))
                outputs[i] = row if n_best > 1 and strategy == "beam" else row[0]
        return outputs
