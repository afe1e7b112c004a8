"""Beam search with the GNMT length and coverage penalties, early stopping and n-best output.

keras-hub's `BeamSampler` has no length penalty, no finished-hypothesis set (a beam that ends
keeps competing with its padding) and returns one hypothesis; this follows the formulation of
Wu et al. (2016) as flax's WMT example and OpenNMT-tf implement it: alive and finished
hypotheses kept apart, finished ones scored
`log_prob / length_penalty(length) + coverage_penalty(alignments)`; alive ones compete on their
log-probability alone.
"""

from keras import ops

from seq2seq.decoding.search import (
    END_ID,
    SearchResult,
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


class BeamSearch:
    """Beam search.

    Args:
        beam_size: hypotheses kept per sentence.
        alpha: GNMT length penalty exponent (0: none; ~0.6 is common). Longer hypotheses win
            more often as alpha grows.
        n_best: hypotheses returned per sentence (<= beam_size).
        min_length: fewest tokens before the end id.
        early_stopping: stop a sentence as soon as it has `beam_size` finished hypotheses,
            instead of when no alive hypothesis can still beat the worst finished one.
        coverage_penalty: GNMT coverage penalty weight beta (0: none; Wu et al. use 0.2), added
            to the score of finished hypotheses; it favours hypotheses that attend to every
            source token. Needs a cache that keeps the cross-attention
            (`Transformer.init_cache(..., attention=True)`; `generate()` builds one).
    """

    def __init__(self, beam_size=4, alpha=0.6, n_best=1, min_length=0, early_stopping=False,
                 coverage_penalty=0.0):
        if not 1 <= n_best <= beam_size:
            raise ValueError(f"n_best={n_best}; expected 1 <= n_best <= beam_size={beam_size}.")
        if coverage_penalty < 0:
            raise ValueError(f"coverage_penalty={coverage_penalty}; expected a weight >= 0.")
        self.beam_size = beam_size
        self.alpha = alpha
        self.n_best = n_best
        self.min_length = min_length
        self.early_stopping = early_stopping
        self.coverage_penalty = coverage_penalty

    @property
    def needs_attention(self):
        """Whether the decoding cache must keep the cross-attention."""
        return self.coverage_penalty > 0

    def __call__(self, next_fn, cache, batch_size, max_length, length_limit=None):
        """Runs the search over a cache built for `batch_size` rows; see `SearchResult`.

        `length_limit` (a scalar, a tensor too, <= `max_length`) stops the search below that
        position inside the `max_length` buffer, as if `max_length` were `length_limit`.
        """
        k = self.beam_size
        limit = max_length if length_limit is None else length_limit
        attention = attention_of(cache)
        if self.needs_attention and attention is None:
            raise ValueError(
                f"BeamSearch(coverage_penalty={self.coverage_penalty}) needs the cross-attention "
                "of each step, but the decoding cache keeps none; build it with "
                "model.init_cache(source_ids, attention=True) (generate() does)."
            )
        source_length = 0 if attention is None else ops.shape(attention)[-1]
        source_mask = ops.ones((batch_size, 1, source_length), "bool")
        if attention is not None and "source_mask" in cache:
            source_mask = ops.expand_dims(cache["source_mask"], 1)  # (batch, 1, source_length)
        cache = {name: _map(lambda x: tile_beams(x, k), value) for name, value in cache.items()}
        alignments = ops.zeros((batch_size, k, max_length, source_length), "float32")
        finished_alignments = alignments

        def coverage(alignments):
            if not self.coverage_penalty:
                return 0.0
            return coverage_penalty(alignments, source_mask, self.coverage_penalty)

        alive = ops.reshape(start_prompt(batch_size * k, max_length), (batch_size, k, max_length))
        # Only beam 0 is live at first, so the first step does not pick k copies of one token.
        alive_log_probs = ops.tile(
            ops.convert_to_tensor([[0.0] + [MASK_LOGIT] * (k - 1)], "float32"), (batch_size, 1)
        )
        finished = ops.zeros((batch_size, k, max_length), "int32")
        finished_scores = ops.full((batch_size, k), MASK_LOGIT, "float32")
        # Row offsets into the flattened (batch * beams) axis.
        offsets = ops.expand_dims(ops.arange(batch_size) * k, 1)

        def sentence_done(alive_log_probs, finished_scores):
            """(batch,) whether each sentence's finished hypotheses are final."""
            worst_finished = ops.min(finished_scores, axis=1)
            if self.early_stopping:
                return ops.greater(worst_finished, MASK_LOGIT / 2)
            # Log-probs only fall, the length penalty only grows with length and the coverage
            # penalty is <= 0: no alive hypothesis can end with more than its log-prob over
            # the longest length penalty.
            best_possible = alive_log_probs[:, 0] / length_penalty(limit - 1, self.alpha)
            return ops.greater(worst_finished, best_possible)

        def cond(alive, alive_log_probs, finished, finished_scores, cache, index, *alignments):
            done = sentence_done(alive_log_probs, finished_scores)
            return ops.logical_and(ops.less(index, limit), ops.logical_not(ops.all(done)))

        def body(alive, alive_log_probs, finished, finished_scores, cache, index, alignments,
                 finished_alignments):
            # A sentence that is done keeps its finished hypotheses while the others of the
            # batch go on, so that it ends as it would alone.
            done = ops.expand_dims(sentence_done(alive_log_probs, finished_scores), 1)
            flat = ops.reshape(alive, (batch_size * k, max_length))
            logits, _, cache = next_fn(flat, cache, index)
            log_probs = log_probabilities(logits, index, self.min_length)
            vocabulary = ops.shape(log_probs)[-1]
            # (batch, beams * vocabulary) candidate continuations.
            candidates = ops.reshape(
                ops.expand_dims(alive_log_probs, 2) + ops.reshape(log_probs, (batch_size, k, -1)),
                (batch_size, -1),
            )
            # 2k candidates always hold k that do not end.
            top_log_probs, top_ids = ops.top_k(candidates, 2 * k)
            beam = top_ids // vocabulary  # (batch, 2k)
            token = ops.cast(top_ids % vocabulary, "int32")
            sequences = _gather_beams(alive, beam)  # (batch, 2k, max_length)
            sequences = ops.slice_update(
                sequences, [0, 0, index], ops.expand_dims(token, 2)
            )
            if attention is not None:  # each candidate's alignments, with this step's row
                step = ops.reshape(attention_of(cache), (batch_size, k, 1, source_length))
                candidate_alignments = ops.slice_update(
                    _gather_beams(alignments, beam), [0, 0, index, 0], _gather_beams(step, beam)
                )
            # A hypothesis may end only where its end id ranks among the k best candidates
            # (as in Hugging Face's BeamSearchScorer), so that a beam of one is greedy search.
            ends = ops.equal(token, END_ID)
            in_top_k = ops.expand_dims(ops.less(ops.arange(2 * k), k), 0)

            # Alive: the k best candidates that do not end.
            alive_candidates = ops.where(ends, MASK_LOGIT, top_log_probs)
            alive_log_probs, alive_rank = ops.top_k(alive_candidates, k)
            alive = _gather_beams(sequences, alive_rank)
            if attention is not None:
                alignments = _gather_beams(candidate_alignments, alive_rank)
            source_beam = ops.take_along_axis(beam, alive_rank, axis=1)
            cache = {
                name: _map(lambda x: ops.take(x, ops.reshape(source_beam + offsets, (-1,)), 0), v)
                for name, v in cache.items()
            }

            # Finished: merge the new ending candidates into the k best so far.
            new_scores = top_log_probs / length_penalty(index, self.alpha)
            if attention is not None:
                new_scores = new_scores + coverage(candidate_alignments)
            new_scores = ops.where(ops.logical_and(ops.logical_and(ends, in_top_k),
                                                   ops.logical_not(done)), new_scores, MASK_LOGIT)
            merged_scores = ops.concatenate([finished_scores, new_scores], axis=1)
            merged = ops.concatenate([finished, sequences], axis=1)
            finished_scores, finished_rank = ops.top_k(merged_scores, k)
            finished = _gather_beams(merged, finished_rank)
            if attention is not None:
                finished_alignments = _gather_beams(
                    ops.concatenate([finished_alignments, candidate_alignments], axis=1),
                    finished_rank,
                )
            return (alive, alive_log_probs, finished, finished_scores, cache, index + 1,
                    alignments, finished_alignments)

        alive, alive_log_probs, finished, finished_scores, _, index, alignments, \
            finished_alignments = ops.while_loop(
                cond,
                body,
                (alive, alive_log_probs, finished, finished_scores, cache,
                 ops.convert_to_tensor(1, "int32"), alignments, finished_alignments),
            )
        # Sentences with fewer than n_best finished hypotheses (cut by the length limit) are
        # completed with alive ones, scored at the length they reached; the others return
        # finished hypotheses only.
        has_finished = ops.greater(finished_scores, MASK_LOGIT / 2)
        complete = ops.greater_equal(ops.sum(ops.cast(has_finished, "int32"), axis=1,
                                             keepdims=True), self.n_best)
        alive_scores = alive_log_probs / length_penalty(index - 1, self.alpha)
        if attention is not None:
            alive_scores = alive_scores + coverage(alignments)
        alive_scores = ops.where(complete, MASK_LOGIT, alive_scores)
        merged_scores = ops.concatenate(
            [ops.where(has_finished, finished_scores, MASK_LOGIT), alive_scores], axis=1
        )
        merged = ops.concatenate([finished, alive], axis=1)
        scores, rank = ops.top_k(merged_scores, self.n_best)
        if attention is None:
            return SearchResult(_gather_beams(merged, rank), scores)
        merged_alignments = ops.concatenate([finished_alignments, alignments], axis=1)
        return SearchResult(
            _gather_beams(merged, rank), scores, _gather_beams(merged_alignments, rank)
        )


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
