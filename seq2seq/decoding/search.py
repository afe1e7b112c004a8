"""The one decoding loop, and greedy search and sampling on top of it.

Every strategy drives a model only through its decode step
`next(prompt, cache, index) -> (logits, hidden, cache)` (see `Transformer.next`): `prompt` is a
fixed `(batch, max_length)` buffer of token ids with the start id at position 0, `index` the
position to predict. Everything runs in `keras.ops.while_loop` on static shapes, so a search
compiles with XLA and goes into a SavedModel.

keras-hub's samplers share this `next` contract, but they continue a prompt inside one buffer
and have no end-of-sequence scoring, minimum length or n-best; these are written for
encoder-decoder search and share one loop.
"""

import keras
from keras import ops

from seq2seq.layers.masking import MASK_LOGIT

PAD_ID, START_ID, END_ID = 0, 1, 2

# Cache entries that hold one row per sentence, not one per hypothesis: a search that decodes
# several hypotheses of a sentence (beam search) copies every other entry per hypothesis and
# leaves these as they are; the model's `next()` reads them for all of a sentence's rows
# (`Transformer.init_cache`: the encoder's keys and values, and the source mask).
PER_SENTENCE = ("cross_attention", "source_mask")


class Strategy:
    """What every search strategy is: its settings, built once (`seq2seq.decoding.from_config`)
    and handed as they are to `translate()`, the CLI and the export.

    Attributes:
        name: the strategy's name in `decoding.strategy`.
        FIELDS: the settings it takes, named as the `DecodingConfig` fields they come from.
        n_best: hypotheses it returns per input.
        max_length: its longest output, start id included; None: the model's (`output_length`).
        takes_constraints: whether it searches under terminology constraints.
    """

    name = None
    takes_constraints = False
    FIELDS = ("min_length", "max_length")
    n_best = 1
    max_length = None

    def output_length(self, model):
        """The length of the output buffer for `model`, start id included."""
        return self.max_length or model.max_length

    def get_config(self):
        return {"strategy": self.name, **{field: getattr(self, field) for field in self.FIELDS}}

    def replace(self, **overrides):
        """This strategy with `overrides` of the fields it takes (others do not apply to it
        and are ignored: e.g. a per-request alpha for greedy search)."""
        applicable = {k: v for k, v in overrides.items() if k in self.FIELDS}
        if not applicable:
            return self
        config = self.get_config()
        config.pop("strategy")
        return self.__class__(**{**config, **applicable})

    def __eq__(self, other):
        return isinstance(other, Strategy) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash(tuple(sorted((k, repr(v)) for k, v in self.get_config().items())))

    def __repr__(self):
        options = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "strategy")
        return f"{self.__class__.__name__}({options})"


class SearchResult:
    """What a search returns.

    Attributes:
        tokens: int32 `(batch, n_best, max_length)`; position 0 holds the start id, then the
            hypothesis, its end id, and padding.
        scores: float32 `(batch, n_best)`: the sum of token log-probabilities (greedy, sampling)
            or the length-penalised score (beam search), best first.
        alignments: float32 `(batch, n_best, max_length, source_length)` or None: row t holds
            the cross-attention of the step that chose token t (zeros at position 0 and after
            the end id). Present when the decoding cache keeps attention (see
            `attention_of`).
        constraints_met: bool `(batch, n_best)` or None (searched without constraints):
            whether the hypothesis contains every constraint phrase.
    """

    def __init__(self, tokens, scores, alignments=None, constraints_met=None):
        self.tokens = tokens
        self.scores = scores
        self.alignments = alignments
        self.constraints_met = constraints_met


def attention_of(cache):
    """The cross-attention `(rows, source_length)` of the latest step, or None.

    A model's `next()` reports it in its cache under "attention" when the cache was built to
    keep it (`Transformer.init_cache(..., attention=True)`); other caches have none.
    """
    return cache.get("attention") if isinstance(cache, dict) else None


def log_probabilities(logits, index, min_length, end_id=END_ID, prefix=None):
    """float32 log-softmax of `(rows, vocabulary)` logits, with the end id forbidden while
    fewer than `min_length` tokens have been generated (position `index` holds token number
    `index`, since position 0 holds the start id), and, where `prefix` `(rows, max_length)`
    holds a token at `index` (not 0), every other token forbidden: the forced token keeps its
    own log-probability, so that a score stays the model's log-probability of the output."""
    log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    vocabulary = ops.shape(log_probs)[-1]
    if min_length:
        is_end = ops.expand_dims(ops.equal(ops.arange(vocabulary), end_id), 0)
        too_short = ops.less(index, min_length + 1)
        log_probs = ops.where(ops.logical_and(is_end, too_short), MASK_LOGIT, log_probs)
    if prefix is not None:
        forced = ops.expand_dims(ops.take(prefix, index, axis=1), 1)  # (rows, 1)
        allowed = ops.logical_or(ops.equal(forced, PAD_ID),
                                 ops.equal(ops.expand_dims(ops.arange(vocabulary), 0), forced))
        log_probs = ops.where(allowed, log_probs, MASK_LOGIT)
    return log_probs


def start_prompt(batch_size, max_length):
    """`(batch, max_length)` buffer: the start id, then padding."""
    prompt = ops.zeros((batch_size, max_length), dtype="int32")
    return ops.slice_update(prompt, [0, 0], ops.full((batch_size, 1), START_ID, dtype="int32"))


def token_by_token(next_fn, cache, batch_size, max_length, choose, min_length=0, end_id=END_ID,
                   length_limit=None, prefix=None):
    """The shared loop of greedy search and sampling: one token per row and step.

    Args:
        next_fn: the model's decode step.
        cache: the decoding cache for `batch_size` rows.
        batch_size: number of rows.
        max_length: length of the token buffer (start id included).
        choose: `(log_probs (batch, vocabulary), index) -> (batch,)` int32 token ids.
        min_length: fewest tokens before the end id.
        end_id: the id that ends a hypothesis.
        length_limit: scalar int (a tensor too), <= `max_length`: decode only positions below
            it, e.g. a per-request maximum inside a fixed-size buffer; default `max_length`.
        prefix: None, or int32 `(batch, max_length)`: where it holds a token (not 0), that token
            is forced at that position (`Translator` builds it from prefix texts).

    Returns:
        `SearchResult` with `n_best = 1`.
    """
    prompt = start_prompt(batch_size, max_length)
    finished = ops.zeros((batch_size,), dtype="bool")
    scores = ops.zeros((batch_size,), dtype="float32")
    attention = attention_of(cache)
    # Alignment rows, filled step by step (an empty source axis when the cache keeps none).
    source_length = 0 if attention is None else ops.shape(attention)[-1]
    alignments = ops.zeros((batch_size, max_length, source_length), "float32")

    limit = max_length if length_limit is None else length_limit

    def cond(prompt, cache, index, finished, scores, alignments):
        return ops.logical_and(ops.less(index, limit), ops.logical_not(ops.all(finished)))

    def body(prompt, cache, index, finished, scores, alignments):
        logits, _, cache = next_fn(prompt, cache, index)
        log_probs = log_probabilities(logits, index, min_length, end_id, prefix)
        token = ops.cast(choose(log_probs, index), "int32")
        token = ops.where(finished, PAD_ID, token)
        token_log_prob = ops.take_along_axis(log_probs, ops.expand_dims(token, 1), axis=1)[:, 0]
        scores = scores + ops.where(finished, 0.0, token_log_prob)
        prompt = ops.slice_update(prompt, [0, index], ops.expand_dims(token, 1))
        if attention is not None:
            row = ops.where(ops.expand_dims(finished, 1), 0.0, attention_of(cache))
            alignments = ops.slice_update(alignments, [0, index, 0], ops.expand_dims(row, 1))
        finished = ops.logical_or(finished, ops.equal(token, end_id))
        return prompt, cache, index + 1, finished, scores, alignments

    prompt, _, _, _, scores, alignments = ops.while_loop(
        cond,
        body,
        (prompt, cache, ops.convert_to_tensor(1, "int32"), finished, scores, alignments),
    )
    return SearchResult(
        ops.expand_dims(prompt, 1),
        ops.expand_dims(scores, 1),
        None if attention is None else ops.expand_dims(alignments, 1),
    )


class GreedySearch(Strategy):
    """The most probable token at each step.

    Args:
        min_length: fewest tokens before the end id.
        max_length: longest output, start id included (None: the model's).
    """

    name = "greedy"

    def __init__(self, min_length=0, max_length=None):
        self.min_length = min_length
        self.max_length = max_length

    def __call__(self, next_fn, cache, batch_size, max_length, length_limit=None, prefix=None,
                 constraints=None):
        _no_constraints(self, constraints)
        return token_by_token(
            next_fn, cache, batch_size, max_length,
            choose=lambda log_probs, index: ops.argmax(log_probs, axis=-1),
            min_length=self.min_length, length_limit=length_limit, prefix=prefix,
        )


def _no_constraints(strategy, constraints):
    if constraints is not None:
        raise ValueError(f"constraints with decoding.strategy={strategy.name!r}; expected "
                         "decoding.strategy='beam' (terminology constraints are a beam search).")


class Sampling(Strategy):
    """Random sampling with temperature, top-k and top-p (nucleus) truncation.

    Args:
        temperature: divides the logits; < 1 sharpens, > 1 flattens.
        top_k: sample among the k most probable tokens (0: all).
        top_p: sample among the most probable tokens whose probabilities sum to p (1.0: all).
        min_length: fewest tokens before the end id.
        max_length: longest output, start id included (None: the model's).
        seed: seed of the sampling; the same seed gives the same samples.
    """

    name = "sampling"
    FIELDS = ("temperature", "top_k", "top_p", "min_length", "max_length", "seed")

    def __init__(self, temperature=1.0, top_k=0, top_p=1.0, min_length=0, max_length=None,
                 seed=None):
        if temperature <= 0:
            raise ValueError(f"temperature={temperature}; expected a positive number.")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p={top_p}; expected 0 < top_p <= 1.")
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self.min_length = min_length
        self.max_length = max_length
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def truncate(self, log_probs):
        """Masks the tokens outside the top-k / top-p set of each row."""
        logits = log_probs / self.temperature
        if self.top_k:
            kth = ops.top_k(logits, self.top_k)[0][:, -1:]
            logits = ops.where(ops.less(logits, kth), MASK_LOGIT, logits)
        if self.top_p < 1.0:
            sorted_logits = ops.flip(ops.sort(logits, axis=-1), axis=-1)
            cumulative = ops.cumsum(ops.softmax(sorted_logits, axis=-1), axis=-1)
            # The smallest logit still needed to reach top_p (the best token always stays).
            needed = ops.concatenate(
                [ops.ones_like(cumulative[:, :1], "bool"), cumulative[:, :-1] < self.top_p],
                axis=-1,
            )
            threshold = ops.min(ops.where(needed, sorted_logits, -MASK_LOGIT), axis=-1)
            logits = ops.where(ops.less(logits, threshold[:, None]), MASK_LOGIT, logits)
        return logits

    def __call__(self, next_fn, cache, batch_size, max_length, length_limit=None, prefix=None,
                 constraints=None):
        _no_constraints(self, constraints)

        def choose(log_probs, index):
            samples = keras.random.categorical(
                self.truncate(log_probs), 1, seed=self.seed_generator, dtype="int32"
            )
            return samples[:, 0]

        return token_by_token(
            next_fn, cache, batch_size, max_length, choose=choose, min_length=self.min_length,
            length_limit=length_limit, prefix=prefix,
        )
