"""Beam search with the GNMT length and coverage penalties, early stopping and n-best output.

keras-hub's `BeamSampler` has no length penalty, no finished-hypothesis set (a beam that ends
keeps competing with its padding) and returns one hypothesis; this follows the formulation of
Wu et al. (2016) as flax's WMT example and OpenNMT-tf implement it: alive and finished
hypotheses kept apart, finished ones scored
`log_prob / length_penalty(length) + coverage_penalty(alignments)`; alive ones compete on their
log-probability alone.
"""

from keras import ops

from seq2seq.decoding import constraints as constraints_lib
from seq2seq.decoding.search import (
    END_ID,
    PER_SENTENCE,
    SearchResult,
    Strategy,
    attention_of,
    log_probabilities,
    start_prompt,
)
from seq2seq.layers.masking import MASK_LOGIT

# Floor of the attention mass in the coverage penalty's log (a source token never attended).
MIN_COVERAGE = 1e-10


def length_penalty(length, alpha):
    """GNMT length penalty `((5 + length) / 6) ** alpha`; 1 when alpha is 0."""
    return ops.power((5.0 + ops.cast(length, "float32")) / 6.0, alpha)


def coverage_penalty(alignments, source_mask, beta):
    """GNMT coverage penalty `beta * sum_i log(min(sum_t a[t, i], 1))` over real source tokens.

    Args:
        alignments: `(..., target_length, source_length)` attention of each target step.
        source_mask: `(..., source_length)` bool, broadcastable; True at real source tokens.
        beta: weight (0: none). The penalty is <= 0 and is 0 once every source token has
            received a total attention of at least 1.

    Returns:
        `(...)` float32.
    """
    coverage = ops.minimum(ops.sum(alignments, axis=-2), 1.0)
    log_coverage = ops.log(ops.maximum(coverage, MIN_COVERAGE))
    return beta * ops.sum(ops.where(source_mask, log_coverage, 0.0), axis=-1)


def tile_beams(tensor, beam_size):
    """`(batch, ...)` -> `(batch * beams, ...)`, each row repeated `beam_size` times."""
    return ops.repeat(tensor, beam_size, axis=0)


class BeamSearch(Strategy):
    """Beam search.

    Args:
        beam_size: hypotheses kept per sentence.
        alpha: GNMT length penalty exponent (0: none; ~0.6 is common). Longer hypotheses win
            more often as alpha grows.
        n_best: hypotheses returned per sentence (<= beam_size).
        min_length: fewest tokens before the end id.
        max_length: longest output, start id included (None: the model's).
        early_stopping: stop a sentence as soon as it has `beam_size` finished hypotheses,
            instead of when no alive hypothesis can still beat the worst finished one.
        coverage_penalty: GNMT coverage penalty weight beta (0: none; Wu et al. use 0.2), added
            to the score of finished hypotheses; it favours hypotheses that attend to every
            source token. Needs a cache that keeps the cross-attention
            (`Transformer.init_cache(..., attention=True)`; `generate()` builds one).

    A search runs in three parts over one explicit state (a dict of tensors): `initialise`,
    `step` in a while loop until `running` is false, and `finalise`.
    """

    name = "beam"
    takes_constraints = True
    FIELDS = ("beam_size", "alpha", "n_best", "min_length", "max_length", "early_stopping",
              "coverage_penalty")

    def __init__(self, beam_size=4, alpha=0.6, n_best=1, min_length=0, max_length=None,
                 early_stopping=False, coverage_penalty=0.0):
        if not 1 <= n_best <= beam_size:
            raise ValueError(f"n_best={n_best}; expected 1 <= n_best <= beam_size={beam_size}.")
        if coverage_penalty < 0:
            raise ValueError(f"coverage_penalty={coverage_penalty}; expected a weight >= 0.")
        self.beam_size = beam_size
        self.alpha = alpha
        self.n_best = n_best
        self.min_length = min_length
        self.max_length = max_length
        self.early_stopping = early_stopping
        self.coverage_penalty = coverage_penalty

    @property
    def needs_attention(self):
        """Whether the decoding cache must keep the cross-attention."""
        return self.coverage_penalty > 0

    def __call__(self, next_fn, cache, batch_size, max_length, length_limit=None, prefix=None,
                 constraints=None):
        """Runs the search over a cache built for `batch_size` rows; see `SearchResult`.

        Args:
            length_limit: a scalar (a tensor too) <= `max_length`: stop below that position
                inside the `max_length` buffer, as if `max_length` were `length_limit`.
            prefix: None, or int32 `(batch_size, max_length)` forced tokens (0: free), token j
                of a prefix at position j + 1.
            constraints: None, or int32 `(batch_size, constraints, phrase_length)` phrases of
                target ids (0-padded; an all-0 row is no constraint) that every hypothesis must
                contain (`seq2seq.decoding.constraints`). A sentence whose phrases have more
                tokens in all than the positions its prefix leaves is searched without them; one
                whose phrases the search did not meet within the length returns the best
                hypotheses it found without them; either is flagged in
                `SearchResult.constraints_met`.
        """
        attention = attention_of(cache)
        if self.needs_attention and attention is None:
            raise ValueError(
                f"BeamSearch(coverage_penalty={self.coverage_penalty}) needs the cross-attention "
                "of each step, but the decoding cache keeps none; build it with "
                "model.init_cache(source_ids, attention=True) (generate() does)."
            )
        limit = max_length if length_limit is None else length_limit
        fits = None
        if constraints is not None:
            # Phrases longer in all than the positions a prefix leaves cannot be met: such a
            # sentence is searched without them (and flagged).
            total = ops.sum(constraints_lib.lengths_of(constraints), axis=1)
            if prefix is not None:
                total = total + ops.sum(ops.cast(ops.not_equal(prefix, 0), "int32"), axis=1)
            fits = ops.less_equal(total, limit - 1)
            constraints = ops.where(fits[:, None, None], constraints, 0)
        context = _Context(self.beam_size, batch_size, max_length, limit, cache, prefix,
                           constraints)
        state = self.initialise(context, cache)
        state = ops.while_loop(lambda state: self.running(context, state),
                               lambda state: self.step(context, next_fn, state), state)
        result = self.finalise(context, state)
        if fits is not None:
            result.constraints_met = ops.logical_and(result.constraints_met, fits[:, None])
        return result

    def initialise(self, context, cache):
        """The state before the first step: one live hypothesis per sentence (the start id),
        no finished ones, the cache copied per hypothesis."""
        k, batch = self.beam_size, context.batch_size
        alive = {"tokens": ops.reshape(start_prompt(batch * k, context.max_length),
                                       (batch, k, context.max_length))}
        if context.attention:
            alive["alignments"] = ops.zeros(
                (batch, k, context.max_length, context.source_length), "float32")
        if context.constraints is not None:
            alive["progress"], alive["met"] = constraints_lib.initial_state(
                context.constraints, k)
        finished = {name: value for name, value in alive.items()
                    if name in ("tokens", "alignments")}
        state = {
            "index": ops.convert_to_tensor(1, "int32"),
            "cache": _map_cache(lambda x: tile_beams(x, k), cache),
            "alive": alive,
            # Only beam 0 is live at first, so the first step does not pick k copies of a token.
            "alive_log_probs": ops.tile(
                ops.convert_to_tensor([[0.0] + [MASK_LOGIT] * (k - 1)], "float32"), (batch, 1)),
            "finished": finished,
            "finished_scores": ops.full((batch, k), MASK_LOGIT, "float32"),
        }
        if context.constraints is not None:  # hypotheses that ended without their constraints
            state["fallback"] = finished
            state["fallback_scores"] = state["finished_scores"]
        return state

    def running(self, context, state):
        """Whether any sentence can still change its result."""
        done = self._sentence_done(context, state["alive_log_probs"], state["finished_scores"])
        return ops.logical_and(ops.less(state["index"], context.limit),
                               ops.logical_not(ops.all(done)))

    def _sentence_done(self, context, alive_log_probs, finished_scores):
        """(batch,) whether each sentence's finished hypotheses are final."""
        worst_finished = ops.min(finished_scores, axis=1)
        if self.early_stopping:
            return ops.greater(worst_finished, MASK_LOGIT / 2)
        # Log-probs only fall, the length penalty only grows with length and the coverage
        # penalty is <= 0: no alive hypothesis can end with more than its log-prob over the
        # longest length penalty.
        best_possible = (ops.max(alive_log_probs, axis=1)
                         / length_penalty(context.limit - 1, self.alpha))
        return ops.greater(worst_finished, best_possible)

    def step(self, context, next_fn, state):
        """One token more for every hypothesis: the state after position `state["index"]`."""
        k, batch, index = self.beam_size, context.batch_size, state["index"]
        # A sentence that is done keeps its finished hypotheses while the others of the batch
        # go on, so that it ends as it would alone.
        done = ops.expand_dims(
            self._sentence_done(context, state["alive_log_probs"], state["finished_scores"]), 1)
        alive = state["alive"]
        flat = ops.reshape(alive["tokens"], (batch * k, context.max_length))
        logits, _, cache = next_fn(flat, state["cache"], index)
        log_probs = log_probabilities(logits, index, self.min_length, prefix=context.prefix)
        # (batch, beams, vocabulary): each continuation's log-probability.
        scores = (ops.expand_dims(state["alive_log_probs"], 2)
                  + ops.reshape(log_probs, (batch, k, -1)))
        if context.constraints is None:
            top = _best_candidates(scores, 2 * k)
        else:
            top = constraints_lib.candidates(scores, alive["progress"], alive["met"],
                                             context.constraints, 2 * k)
        beam, token = top["beam"], top["token"]  # (batch, candidates)

        # The candidates' histories with their new token (and alignment row).
        candidates = {"tokens": ops.slice_update(_gather_beams(alive["tokens"], beam),
                                                 [0, 0, index], ops.expand_dims(token, 2))}
        if context.attention:
            step_rows = ops.reshape(attention_of(cache), (batch, k, 1, context.source_length))
            candidates["alignments"] = ops.slice_update(
                _gather_beams(alive["alignments"], beam), [0, 0, index, 0],
                _gather_beams(step_rows, beam))
        if context.constraints is not None:
            candidates["progress"], candidates["met"] = top["progress"], top["met"]

        # Alive: the k first candidates that do not end.
        ends = ops.equal(token, END_ID)
        _, alive_rank = ops.top_k(ops.where(ends, 2 * MASK_LOGIT, top["priority"]), k)
        alive_log_probs = ops.take_along_axis(top["log_prob"], alive_rank, axis=1)
        source_beam = ops.take_along_axis(beam, alive_rank, axis=1)
        rows = ops.reshape(source_beam + ops.expand_dims(ops.arange(batch) * k, 1), (-1,))

        may_end = ops.logical_and(top["may_end"], ops.logical_not(done))
        end_scores = top["log_prob"] / length_penalty(index, self.alpha)
        if self.coverage_penalty:
            end_scores = end_scores + self._coverage(context, candidates["alignments"])
        new_state = {
            **state,
            "index": index + 1,
            "cache": _map_cache(lambda x: ops.take(x, rows, axis=0), cache),
            "alive": _gather_all(candidates, alive_rank),
            "alive_log_probs": alive_log_probs,
        }
        met = True if context.constraints is None else ops.all(candidates["met"], axis=-1)
        new_state["finished"], new_state["finished_scores"] = self._merge(
            state["finished"], state["finished_scores"], candidates,
            ops.where(ops.logical_and(may_end, met), end_scores, MASK_LOGIT))
        if context.constraints is not None:
            new_state["fallback"], new_state["fallback_scores"] = self._merge(
                state["fallback"], state["fallback_scores"], candidates,
                ops.where(ops.logical_and(may_end, ops.logical_not(met)), end_scores,
                          MASK_LOGIT))
        return new_state

    def _merge(self, kept, kept_scores, candidates, candidate_scores):
        """The k best of kept hypotheses and new ending candidates."""
        merged = {name: ops.concatenate([value, candidates[name]], axis=1)
                  for name, value in kept.items()}
        scores, rank = ops.top_k(ops.concatenate([kept_scores, candidate_scores], axis=1),
                                 self.beam_size)
        return _gather_all(merged, rank), scores

    def _coverage(self, context, alignments):
        return coverage_penalty(alignments, context.source_mask, self.coverage_penalty)

    def finalise(self, context, state):
        """The n-best of each sentence: finished hypotheses, completed with alive ones (scored
        at the length they reached) where fewer than n_best finished within the length; with
        constraints, those that meet them first."""
        index = state["index"]
        alive = state["alive"]
        alive_scores = state["alive_log_probs"] / length_penalty(index - 1, self.alpha)
        if self.coverage_penalty:
            alive_scores = alive_scores + self._coverage(context, alive["alignments"])
        alive = {name: alive[name] for name in state["finished"]}
        if context.constraints is None:
            best, scores, _ = self._n_best(state["finished"], state["finished_scores"], alive,
                                           alive_scores)
            return SearchResult(best["tokens"], scores, best.get("alignments"))
        met = ops.all(state["alive"]["met"], axis=-1)
        pools = [
            self._n_best(state["finished"], state["finished_scores"], alive,
                         ops.where(met, alive_scores, MASK_LOGIT)),
            self._n_best(state["fallback"], state["fallback_scores"], alive,
                         ops.where(met, MASK_LOGIT, alive_scores)),
        ]
        n = self.n_best
        # Hypotheses that meet the constraints first, then the others, each best first.
        key = ops.concatenate([
            ops.where(pools[0][2], 0, 2 * n) + ops.arange(n),
            ops.where(pools[1][2], n, 2 * n) + ops.arange(n),
        ], axis=1)
        _, rank = ops.top_k(-ops.cast(key, "float32"), n)
        merged = {name: ops.concatenate([pools[0][0][name], pools[1][0][name]], axis=1)
                  for name in pools[0][0]}
        best = _gather_all(merged, rank)
        scores = ops.take_along_axis(ops.concatenate([pools[0][1], pools[1][1]], axis=1), rank,
                                     axis=1)
        return SearchResult(best["tokens"], scores, best.get("alignments"),
                            constraints_met=ops.less(rank, n))

    def _n_best(self, finished, finished_scores, alive, alive_scores):
        """`(hypotheses, scores, valid)` of the n best finished hypotheses; alive ones compete
        only in sentences with fewer than n_best finished."""
        has_finished = ops.greater(finished_scores, MASK_LOGIT / 2)
        complete = ops.greater_equal(
            ops.sum(ops.cast(has_finished, "int32"), axis=1, keepdims=True), self.n_best)
        merged_scores = ops.concatenate([
            ops.where(has_finished, finished_scores, MASK_LOGIT),
            ops.where(complete, MASK_LOGIT, alive_scores),
        ], axis=1)
        merged = {name: ops.concatenate([finished[name], alive[name]], axis=1)
                  for name in finished}
        scores, rank = ops.top_k(merged_scores, self.n_best)
        return _gather_all(merged, rank), scores, ops.greater(scores, constraints_lib.DEAD)


class _Context:
    """What stays the same through one search: sizes, the length limit, the source mask of the
    coverage penalty, the forced prefix (one row per hypothesis) and the constraints."""

    def __init__(self, beam_size, batch_size, max_length, limit, cache, prefix, constraints):
        self.batch_size, self.max_length, self.limit = batch_size, max_length, limit
        attention = attention_of(cache)
        self.attention = attention is not None
        self.source_length = 0 if attention is None else ops.shape(attention)[-1]
        self.source_mask = None
        if self.attention and "source_mask" in cache:
            self.source_mask = ops.expand_dims(cache["source_mask"], 1)  # (batch, 1, source)
        elif self.attention:
            self.source_mask = ops.ones((batch_size, 1, self.source_length), "bool")
        self.prefix = None if prefix is None else tile_beams(prefix, beam_size)
        self.constraints = constraints


def _best_candidates(scores, count):
    """The `count` (2 x beams) best continuations of `(batch, beams, vocabulary)` scores, best
    first: dict of `(batch, count)` "beam", "token", "log_prob", "priority" (the log-prob) and
    "may_end"."""
    vocabulary = ops.shape(scores)[-1]
    log_prob, ids = ops.top_k(ops.reshape(scores, (ops.shape(scores)[0], -1)), count)
    token = ops.cast(ids % vocabulary, "int32")
    # A hypothesis may end only where its end id is among the beam-size first candidates (as
    # in Hugging Face's BeamSearchScorer), so that a beam of one is greedy search.
    first = ops.expand_dims(ops.less(ops.arange(count), count // 2), 0)
    may_end = ops.logical_and(ops.logical_and(ops.equal(token, END_ID), first),
                              ops.greater(log_prob, constraints_lib.DEAD))
    return {"beam": ops.cast(ids // vocabulary, "int32"), "token": token, "log_prob": log_prob,
            "priority": log_prob, "may_end": may_end}


def _map_cache(function, cache):
    """`function` over the cache entries that hold one row per hypothesis (`PER_SENTENCE`
    entries are shared by a sentence's hypotheses)."""
    return {name: value if name in PER_SENTENCE else _map(function, value)
            for name, value in cache.items()}


def _gather_all(hypotheses, indices):
    """`_gather_beams` of every tensor of a dict of `(batch, beams, ...)` tensors."""
    return {name: _gather_beams(value, indices) for name, value in hypotheses.items()}


def _gather_beams(tensor, indices):
    """`tensor[b, indices[b, j]]` for `(batch, beams, ...)` tensor and `(batch, n)` indices."""
    batch, beams = ops.shape(tensor)[0], ops.shape(tensor)[1]
    flat = ops.reshape(tensor, (-1, *ops.shape(tensor)[2:]))
    offsets = ops.expand_dims(ops.arange(batch) * beams, 1)
    gathered = ops.take(flat, ops.reshape(indices + offsets, (-1,)), axis=0)
    return ops.reshape(gathered, (batch, ops.shape(indices)[1], *ops.shape(tensor)[2:]))


def _map(function, value):
    """Applies `function` to a tensor or to each tensor of a tuple."""
    return tuple(function(x) for x in value) if isinstance(value, tuple) else function(value)
