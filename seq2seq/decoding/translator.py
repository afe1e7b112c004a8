"""`translate()`: raw strings in, strings out, through the in-graph tokenizers.

Tokenization, search and detokenization form one TensorFlow function (`translate_graph`), the
same one the SavedModel export serves, so `translate()` and a served model agree.

Constraint phrases are cut to `MAX_PHRASE_TOKENS` target tokens.
"""

import tensorflow as tf

from seq2seq.decoding import build, for_call, from_config, generate
from seq2seq.text import sentences
from seq2seq.text.tokenizer import END_ID, START_ID

MAX_PHRASE_TOKENS = 16


class Translator:
    """A trained model with its tokenizers and decoding strategy.

    Args:
        model: a `Transformer`.
        source_tokenizer, target_tokenizer: `seq2seq.text.tokenizer.Tokenizer`s.
        max_source_length: sources are cut to this many tokens (end id included); longer
            input, even megabytes of it, is truncated, never rejected. Default: the model's
            `max_length`.
        strategy: the default search (a `seq2seq.decoding.Strategy`); default
            `BeamSearch()`.
        split_sentences: translate each input one sentence at a time and join the
            translations with a space (`seq2seq.text.sentences`); for models trained on
            sentences that are given paragraphs. Length limits then hold per sentence.
        batch_size: default sentences per call of the model.

    Example:
    >>> translator = Translator(model, tokenizer, tokenizer)
    >>> translator.translate(["Choose Tools - Options."], beam_size=4)
    ['Wählen Sie Extras - Optionen.']
    """

    def __init__(
        self, model, source_tokenizer, target_tokenizer, max_source_length=None, strategy=None,
        split_sentences=False, batch_size=64,
    ):
        self.model = model
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.max_source_length = max_source_length or model.max_length
        self.strategy = strategy or build("beam")
        self.split_sentences = split_sentences
        self.batch_size = batch_size
        self._functions = {}

    @classmethod
    def for_config(cls, model, source_tokenizer, target_tokenizer, config):
        """The translator of a run: its source cut (`data.max_source_length`), strategy
        (`decoding`, built once by `seq2seq.decoding.from_config`), sentence splitting and
        batch size."""
        return cls(model, source_tokenizer, target_tokenizer,
                   max_source_length=config.data.max_source_length,
                   strategy=from_config(config.decoding),
                   split_sentences=config.decoding.split_sentences,
                   batch_size=config.decoding.batch_size)

    def with_model(self, model):
        """A translator with the same tokenizers and settings around another model."""
        return Translator(model, self.source_tokenizer, self.target_tokenizer,
                          max_source_length=self.max_source_length, strategy=self.strategy,
                          split_sentences=self.split_sentences, batch_size=self.batch_size)

    def encode_sources(self, texts):
        """`(batch,)` strings -> `(batch, length)` int32 ids ending with the end id, 0-padded."""
        return self.source_tokenizer.encode_sources(texts, self.max_source_length).to_tensor()

    def score_graph(self, sources, targets):
        """Teacher-forced log-probabilities of `targets` given `sources`, as TensorFlow ops.

        Sources are encoded as for translation; each target is tokenized as in training, cut
        to `model.max_length - 1` tokens (the model reads `max_length` positions: the start id
        and those tokens) and followed by the end id, whose log-probability counts too.

        Returns:
            `(totals, token_log_probs, lengths)`: float32 `(batch,)` sums, float32
            `(batch, length)` per token (0 past each target's end) and int32 `(batch,)` token
            counts (the end id included).
        """
        ids = self.target_tokenizer.tokenize(targets)[:, : self.model.max_length - 1]
        return self.score_ids(self.encode_sources(sources), ids)

    def score_ids(self, source_ids, ids):
        """`score_graph` on ids: `source_ids` `(batch, length)` as `encode_sources` gives
        them, `ids` ragged `(batch, None)` target ids without start or end id."""
        rows = ids.nrows()
        target_in = tf.concat([tf.fill([rows, 1], START_ID), ids], axis=1).to_tensor()
        target_out = tf.concat([ids, tf.fill([rows, 1], END_ID)], axis=1)
        lengths = tf.cast(target_out.row_lengths(), tf.int32)
        chosen = self._teacher_forced(source_ids, target_in, target_out.to_tensor())
        return tf.reduce_sum(chosen, axis=1), chosen, lengths

    def _teacher_forced(self, source_ids, target_in, target_out):
        """float32 `(batch, length)` log-probability of each `target_out` token given
        `target_in` (the tokens before it), in one full pass of the model; 0 where
        `target_out` is padding."""
        logits = self.model((source_ids, target_in), training=False)
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
        chosen = tf.gather(log_probs, target_out, batch_dims=2)
        return tf.where(tf.not_equal(target_out, 0), chosen, 0.0)

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

    def translate_graph(self, texts, strategy, length_limit=None, prefixes=None,
                        constraints=None, details=False):
        """The whole translation as TensorFlow ops.

        Args:
            texts: string `(batch,)`.
            strategy: a `Strategy`.
            length_limit: a scalar tensor <= the strategy's output length: the search ends
                earlier inside that buffer (see `generate`).
            prefixes: None, or string `(batch,)` target text each translation starts with
                ("": none).
            constraints: None, or string `(batch, k)` target phrases each translation must
                contain ("": none).
            details: also return each hypothesis's tokens, alignments and confidence.

        With `split_sentences`, the i-th of the n-best of an input joins the i-th best of each
        of its sentences, scored by their sum; with prefixes, constraints or details, texts
        are translated whole (a prefix, a phrase and an alignment hold for the whole text).

        Returns:
            A dict: "translations" string `(batch, n_best)`, "scores" float32
            `(batch, n_best)`; with constraints "constraints_met" bool `(batch, n_best)`;
            with `details` (see `_details`) "tokens", "alignments", "source_tokens",
            "token_log_probs", "mean_log_prob", "min_prob".
        """
        if not self.split_sentences or details or prefixes is not None or \
                constraints is not None:
            return self._translate_sentences(texts, strategy, length_limit, prefixes,
                                             constraints, details)
        split = sentences.split(texts)
        outputs = self._translate_sentences(split.flat_values, strategy, length_limit)
        strings = tf.RaggedTensor.from_row_splits(outputs["translations"], split.row_splits)
        scores = tf.RaggedTensor.from_row_splits(outputs["scores"], split.row_splits)
        return {"translations": sentences.join(strings),
                "scores": tf.reduce_sum(scores, axis=1)}

    def _translate_sentences(self, texts, strategy, length_limit, prefixes=None,
                             constraints=None, details=False):
        source_ids = self.encode_sources(texts)
        max_length = strategy.output_length(self.model)
        prefix = None
        if prefixes is not None:
            prefix = _forced_prefix(self.target_tokenizer.tokenize(prefixes), max_length)
        phrases = None
        if constraints is not None:
            shape = tf.shape(constraints)
            ids = self.target_tokenizer.tokenize(tf.reshape(constraints, [-1]))
            ids = tf.cast(ids[:, :MAX_PHRASE_TOKENS], tf.int32).to_tensor()
            ids = tf.pad(ids, [[0, 0], [0, 1]])  # at least one column, where all are ""
            phrases = tf.reshape(ids, [shape[0], shape[1], tf.shape(ids)[1]])
        result = generate(self.model, source_ids, strategy, max_length,
                          return_alignments=details, length_limit=length_limit,
                          prefix=prefix, constraints=phrases)
        tokens = tf.convert_to_tensor(result.tokens)
        batch, n_best = tf.shape(tokens)[0], tf.shape(tokens)[1]
        flat = tf.reshape(tokens, (batch * n_best, -1))
        strings = self.target_tokenizer.detokenize(flat)
        outputs = {"translations": tf.reshape(strings, (batch, n_best)),
                   "scores": tf.convert_to_tensor(result.scores)}
        if constraints is not None:
            outputs["constraints_met"] = tf.convert_to_tensor(result.constraints_met)
        if details:
            outputs.update(self._details(source_ids, tokens, result.alignments))
        return outputs

    def _details(self, source_ids, tokens, alignments):
        """Per hypothesis: "tokens" its target pieces, string `(batch, n_best, length)` ("" as
        padding; the end piece last where it ended); "alignments" int32 of the same shape,
        each token's source position (the argmax of the cross-attention of the step that
        chose it; -1 as padding), into "source_tokens" string `(batch, source_length)` (the
        source pieces, the end piece last); "token_log_probs" float32 `(batch, n_best,
        length)`, each token's log-probability under a teacher-forced pass of the model over
        the output (0 as padding); "mean_log_prob" and "min_prob" float32
        `(batch, n_best)`, their mean and the lowest token probability."""
        batch, n_best, length = tf.shape(tokens)[0], tf.shape(tokens)[1], tf.shape(tokens)[2]
        flat = tf.reshape(tokens, (batch * n_best, length))
        produced = flat[:, 1:]  # (rows, length - 1): the tokens the search chose
        chosen = self._teacher_forced(tf.repeat(source_ids, n_best, axis=0), flat[:, :-1],
                                      produced)
        real = tf.not_equal(produced, 0)
        counts = tf.maximum(tf.reduce_sum(tf.cast(real, tf.float32), axis=1), 1.0)
        lowest = tf.reduce_min(chosen, axis=1)  # 0 at padding is above every log-prob
        links = tf.cast(tf.argmax(tf.convert_to_tensor(alignments), axis=-1), tf.int32)
        links = tf.reshape(links, (batch * n_best, length))[:, 1:]
        pieces = self.target_tokenizer.id_to_token(produced)
        rows = lambda x: tf.reshape(x, (batch, n_best, length - 1))  # noqa: E731
        return {
            "tokens": rows(tf.where(real, pieces, "")),
            "alignments": rows(tf.where(real, links, -1)),
            "source_tokens": tf.where(tf.not_equal(source_ids, 0),
                                      self.source_tokenizer.id_to_token(source_ids), ""),
            "token_log_probs": rows(chosen),
            "mean_log_prob": tf.reshape(tf.reduce_sum(chosen, axis=1) / counts,
                                        (batch, n_best)),
            "min_prob": tf.reshape(tf.exp(lowest), (batch, n_best)),
        }

    def _function(self, strategy, prefixes, constraints, details):
        key = (strategy, prefixes, constraints, details)
        if key not in self._functions:
            spec = [tf.TensorSpec([None], tf.string)]
            if prefixes:
                spec.append(tf.TensorSpec([None], tf.string))
            if constraints:
                spec.append(tf.TensorSpec([None, None], tf.string))

            @tf.function(input_signature=spec)
            def run(texts, *controls):
                controls = list(controls)
                return self.translate_graph(
                    texts, strategy, prefixes=controls.pop(0) if prefixes else None,
                    constraints=controls.pop(0) if constraints else None, details=details)

            self._functions[key] = run
        return self._functions[key]

    def translate(self, texts, strategy=None, batch_size=None, return_scores=False,
                  prefixes=None, constraints=None, return_alignments=False, **options):
        """Translates a list of strings.

        Args:
            texts: source strings.
            strategy: a `seq2seq.decoding.Strategy`, or a strategy name ("beam", "greedy",
                "sampling") built with `options`; default the translator's.
            batch_size: sentences per call of the model (default the translator's). Sentences
                are batched in order of length (and returned in input order), so a batch pads
                little and its hypotheses end at about the same step.
            return_scores: return `(text, score)` pairs.
            prefixes: None, or one target text per input that its translation continues
                ("" for none): its tokens are forced, then the search runs free. With
                prefixes, constraints or alignments, texts are translated whole, even with
                `split_sentences`.
            constraints: None, or one list of target phrases per input that its translation
                must contain, in any order (beam search). A sentence whose phrases cannot be
                met within the length gets its best translation without them, reported as
                `constraints_met` False in a detailed result.
            return_alignments: return a dict per hypothesis: "translation", "score",
                "tokens" (target pieces), "source_tokens", "alignments" (each target piece's
                source position), "token_log_probs", "mean_log_prob", "min_prob" and, with
                constraints, "constraints_met".
            **options: settings of the strategy (e.g. `beam_size`, `alpha`, `n_best`,
                `max_length`, `top_k`) replacing those it has.

        Returns:
            One string per input; with `n_best > 1` a list of `n_best` per input; with
            `return_scores` `(string, score)` tuples, with `return_alignments` dicts, in place
            of strings.
        """
        strategy = for_call(self.strategy, strategy, **options)
        texts = list(texts)
        for name, values in (("prefixes", prefixes), ("constraints", constraints)):
            if values is not None and len(values) != len(texts):
                raise ValueError(f"{len(values)} {name} for {len(texts)} texts; expected one "
                                 f"per text.")
        if constraints is not None:  # a rectangle: "" where a text has fewer phrases
            constraints = [list(phrases) for phrases in constraints]
            width = max([len(phrases) for phrases in constraints] + [1])
            constraints = [phrases + [""] * (width - len(phrases)) for phrases in constraints]
        controls = [values for values in (prefixes, constraints) if values is not None]
        batch_size = batch_size or self.batch_size
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        outputs = [None] * len(texts)
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            args = [tf.constant([texts[i] for i in rows])]
            args += [tf.constant([values[i] for i in rows], tf.string) for values in controls]
            result = self._call(lambda: self._function(
                strategy, prefixes is not None, constraints is not None, return_alignments),
                *args)
            result = {name: value.numpy() for name, value in result.items()}
            for j, i in enumerate(rows):
                row = [_hypothesis(result, j, k, return_scores, return_alignments)
                       for k in range(result["translations"].shape[1])]
                outputs[i] = row if strategy.n_best > 1 else row[0]
        return outputs


def _forced_prefix(prefix_ids, max_length):
    """`(batch, max_length)` int32 buffer of forced tokens from ragged `(batch, None)` prefix
    ids (no start or end id): token j of a prefix at position j + 1, 0 elsewhere (free). A
    prefix is cut to `max_length - 1` tokens."""
    prefix_ids = tf.cast(prefix_ids[:, : max_length - 1], tf.int32)
    padded = tf.concat([tf.zeros([prefix_ids.nrows(), 1], tf.int32), prefix_ids], axis=1)
    return padded.to_tensor(shape=[None, max_length])


def _hypothesis(result, j, k, return_scores, return_alignments):
    """Hypothesis `k` of row `j` of a batch's numpy results, as `translate` returns it."""
    text = result["translations"][j, k].decode("utf-8")
    if not return_alignments:
        return (text, float(result["scores"][j, k])) if return_scores else text
    tokens = [t.decode("utf-8") for t in result["tokens"][j, k] if t]
    hypothesis = {
        "translation": text,
        "score": float(result["scores"][j, k]),
        "tokens": tokens,
        "source_tokens": [t.decode("utf-8") for t in result["source_tokens"][j] if t],
        "alignments": result["alignments"][j, k, : len(tokens)].tolist(),
        "token_log_probs": result["token_log_probs"][j, k, : len(tokens)].tolist(),
        "mean_log_prob": float(result["mean_log_prob"][j, k]),
        "min_prob": float(result["min_prob"][j, k]),
    }
    if "constraints_met" in result:
        hypothesis["constraints_met"] = bool(result["constraints_met"][j, k])
    return hypothesis
