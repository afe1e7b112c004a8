"""Terminology constraints: phrases every output of a beam search must contain.

A constraint is a phrase of target token ids (as the target tokenizer splits it). Each
hypothesis tracks, per phrase, whether it is met and how many of its tokens the hypothesis has
just produced in a row (its progress). The beam keeps hypotheses that have met different
numbers of constraint tokens side by side, as dynamic beam allocation does (Post and Vilar,
2018): the candidates of a step are the best continuations overall, each hypothesis's next
token of every unmet phrase, and each hypothesis's best token and end id; they are grouped in
banks by the number of constraint tokens met and taken round robin, the best of every bank
first (most tokens met first), then the second best of every bank, and so on. Everything has
static shapes (`phrases` `(batch, constraints, phrase_length)`, candidates a fixed number per
step), so the search compiles with XLA and serves from a SavedModel.

A phrase is followed from its first token: a partial match that fails restarts at that token
or at nothing, so an occurrence that overlaps a failed partial match of the same phrase (only
possible for a phrase that repeats its own beginning, e.g. "a a b" in "a a a b") is not
counted; the search then goes on looking for another. A hypothesis reported as meeting its
constraints always contains them.
"""

from keras import ops

from seq2seq.layers.masking import MASK_LOGIT

END_ID = 2
DEAD = MASK_LOGIT / 2  # a candidate scored below this continues a masked hypothesis


def lengths_of(phrases):
    """`(batch, constraints)` int32 token counts of `(batch, constraints, phrase_length)`
    0-padded phrases (0 for an absent constraint)."""
    return ops.sum(ops.cast(ops.not_equal(phrases, 0), "int32"), axis=-1)


def initial_state(phrases, beams):
    """`(progress, met)` of `beams` empty hypotheses per sentence, `(batch, beams,
    constraints)` each: nothing produced; absent constraints count as met."""
    lengths = lengths_of(phrases)
    met = ops.repeat(ops.expand_dims(ops.equal(lengths, 0), 1), beams, axis=1)
    return ops.zeros(ops.shape(met), "int32"), met


def next_tokens(progress, met, phrases):
    """`(batch, beams, constraints)`: the token that continues each unmet phrase (0 where met)."""
    width = ops.shape(phrases)[-1]
    position = ops.minimum(progress, width - 1)
    tokens = ops.take_along_axis(
        ops.expand_dims(phrases, 1), ops.expand_dims(position, -1), axis=-1
    )[..., 0]
    return ops.where(met, 0, tokens)


def advance(progress, met, tokens, phrases):
    """The state after each hypothesis of `(batch, n, constraints)` states produces its token
    `(batch, n)`."""
    lengths = ops.expand_dims(lengths_of(phrases), 1)  # (batch, 1, constraints)
    token = ops.expand_dims(tokens, -1)
    continues = ops.equal(token, next_tokens(progress, met, phrases))
    restarts = ops.equal(token, ops.expand_dims(phrases[:, :, 0], 1))
    progress = ops.where(continues, progress + 1, ops.where(restarts, 1, 0))
    met = ops.logical_or(met, ops.logical_and(ops.equal(progress, lengths),
                                              ops.greater(lengths, 0)))
    return ops.where(met, 0, progress), met


def tokens_met(progress, met, phrases):
    """`(batch, n)` constraint tokens met: the tokens of the phrases met, plus the progress of
    the furthest phrase in progress. Counting one partial phrase only (phrases that share
    their first tokens progress together) makes the next token of that phrase always worth
    one more: the best hypothesis of the highest bank gains a token at every step, so that
    phrases of C tokens in all are met within C steps."""
    lengths = ops.expand_dims(lengths_of(phrases), 1)
    return (ops.sum(ops.where(met, lengths, 0), axis=-1)
            + ops.max(ops.where(met, 0, progress), axis=-1))


def candidates(scores, progress, met, phrases, count):
    """The candidates of one constrained beam-search step.

    The candidates are the `count` best continuations overall, each hypothesis's next token of
    every unmet phrase, its best token other than the end, and its end. The beam takes them in
    round-robin order over banks (`round_robin`). An end may finish a hypothesis where the
    unconstrained search would let it: a hypothesis that meets its constraints where its end
    scores among the beam-size best continuations of such hypotheses, one that does not (a
    fallback, see `BeamSearch`) where its end scores among the beam-size best of all.

    Args:
        scores: `(batch, beams, vocabulary)` float32: each hypothesis's log-probability plus
            its next token's.
        progress, met: the hypotheses' states, `(batch, beams, constraints)`.
        phrases: `(batch, constraints, phrase_length)` int32, 0-padded.
        count: the number of best continuations overall among the candidates (2 x beams).

    Returns:
        Dict of `(batch, n)` tensors: "beam", "token", "log_prob", "priority" (the beam takes
        the highest first), "may_end" (bool), and the candidates' states "progress", "met"
        `(batch, n, constraints)`.
    """
    batch, beams, vocabulary = ops.shape(scores)[0], ops.shape(scores)[1], ops.shape(scores)[2]
    each_beam = ops.broadcast_to(ops.arange(beams)[None], (batch, beams))
    top_scores, top_ids = ops.top_k(ops.reshape(scores, (batch, -1)), count)
    phrase_tokens = next_tokens(progress, met, phrases)  # (batch, beams, constraints)
    phrase_scores = ops.where(met, 2 * MASK_LOGIT,
                              ops.take_along_axis(scores, phrase_tokens, axis=-1))
    is_end = ops.equal(ops.arange(vocabulary), END_ID)
    best = ops.cast(ops.argmax(ops.where(is_end, 2 * MASK_LOGIT, scores), axis=-1), "int32")
    beam = ops.concatenate([
        ops.cast(top_ids // vocabulary, "int32"),
        ops.reshape(ops.broadcast_to(each_beam[..., None], ops.shape(progress)), (batch, -1)),
        each_beam, each_beam,
    ], axis=1)
    token = ops.concatenate([
        ops.cast(top_ids % vocabulary, "int32"), ops.reshape(phrase_tokens, (batch, -1)), best,
        ops.full((batch, beams), END_ID, "int32"),
    ], axis=1)
    log_prob = ops.concatenate([
        top_scores, ops.reshape(phrase_scores, (batch, -1)),
        ops.take_along_axis(scores, ops.expand_dims(best, -1), axis=-1)[..., 0],
        scores[:, :, END_ID],
    ], axis=1)
    # A candidate met twice (a phrase token that is also among the best) counts once.
    key = beam * vocabulary + token
    position = ops.arange(ops.shape(key)[1])
    earlier = ops.less(position[None, None, :], position[None, :, None])  # j before i
    repeated = ops.any(ops.logical_and(ops.equal(key[:, :, None], key[:, None, :]),
                                       earlier), axis=-1)
    log_prob = ops.where(repeated, 2 * MASK_LOGIT, log_prob)

    new_progress, new_met = advance(
        ops.take_along_axis(progress, beam[..., None], axis=1),
        ops.take_along_axis(met, beam[..., None], axis=1), token, phrases)
    bank = tokens_met(new_progress, new_met, phrases)
    most = ops.shape(phrases)[1] * ops.shape(phrases)[2]
    # The beam-size-th best continuation overall, and of the hypotheses that meet everything.
    kth_best = top_scores[:, beams - 1 : beams]
    all_met = ops.all(met, axis=-1)  # (batch, beams)
    kth_best_met = ops.top_k(ops.reshape(ops.where(all_met[..., None], scores, 2 * MASK_LOGIT),
                                         (batch, -1)), beams)[0][:, beams - 1 :]
    ends = ops.logical_and(ops.equal(token, END_ID), ops.greater(log_prob, DEAD))
    candidate_met = ops.all(new_met, axis=-1)
    may_end = ops.logical_and(ends, ops.where(candidate_met,
                                              ops.greater_equal(log_prob, kth_best_met),
                                              ops.greater_equal(log_prob, kth_best)))
    return {
        "beam": beam, "token": token, "log_prob": log_prob,
        "priority": -ops.cast(round_robin_key(log_prob, bank, most), "float32"),
        "may_end": may_end, "progress": new_progress, "met": new_met,
    }


def round_robin_key(scores, banks, most):
    """`(batch, n)` int32 keys ordering `n` candidates, lowest first: the best of each bank
    (most tokens met first), then the second best of each bank, and so on; candidates scored
    below `DEAD` last.

    Args:
        scores: `(batch, n)` float32; ties go to the earlier candidate.
        banks: `(batch, n)` int32 in `0 .. most`.
        most: the largest bank there can be (a static bound).
    """
    n = ops.shape(scores)[1]
    position = ops.arange(n)
    live = ops.greater(scores, DEAD)
    s_i, s_j = scores[:, :, None], scores[:, None, :]
    better = ops.logical_or(
        ops.greater(s_j, s_i),
        ops.logical_and(ops.equal(s_j, s_i), ops.less(position[None, None, :],
                                                       position[None, :, None])))
    same_bank = ops.logical_and(ops.equal(banks[:, :, None], banks[:, None, :]),
                                live[:, None, :])
    rank = ops.sum(ops.cast(ops.logical_and(same_bank, better), "int32"), axis=-1)
    return ops.where(live, rank * (most + 2) + (most - banks), n * (most + 2) + most + 1)
