"""BART's corruption of monolingual text, on token ids in tf.data (Lewis et al., 2020).

`data.task: denoising` trains the model to write a text back from a corrupted copy of it; the
pairs are `(text, text)` and only the source is corrupted, per batch, seeded like the source
noise (`seq2seq.data.noise`):

- sentence permutation: the sentences of a row are put in a random order (a sentence ends with
  a token whose text ends in `.`, `!` or `?`);
- text infilling: spans of tokens, their lengths drawn from Poisson(`span_lambda`), are each
  replaced by one mask token, so that the model must also tell how many tokens are missing.
  Span starts are drawn at a rate that makes the expected share of masked tokens exactly
  `mask_ratio` (`span_start_rate`). A drawn length of 0 counts as 1: BART's zero-length spans
  (a mask inserted, nothing removed) are left out, so a row never grows.

The end id, and the padding after it, never move or go.
"""

import math

import tensorflow as tf

from seq2seq.text.tokenizer import END_ID, PAD_ID

MASK_TOKEN = "<mask>"
# Span lengths are clipped here (Poisson(3) exceeds it with probability 1e-9).
MAX_SPAN = 20


def sentence_ends(tokenizer):
    """bool `(vocabulary_size,)`: whether each id's token ends a sentence."""
    return tf.constant([t.rstrip("\"'”’»)]").endswith((".", "!", "?"))
                        for t in tokenizer.tokens()])


def span_lengths_at_least(span_lambda):
    """`[P(L >= k) for k = 1..MAX_SPAN]` of the span length L = max(Poisson(lambda), 1)."""
    pmf = [math.exp(-span_lambda) * span_lambda**k / math.factorial(k)
           for k in range(MAX_SPAN + 1)]
    pmf[1] += pmf[0]  # a 0 counts as 1
    pmf[0] = 0.0
    return [sum(pmf[k:]) for k in range(1, MAX_SPAN + 1)]


def span_start_rate(mask_ratio, span_lambda):
    """The rate q of span starts per position for which a position is masked with probability
    `mask_ratio`: a position is left unmasked when no span starting k = 0, 1, ... tokens
    before it is longer than k, so `prod_k (1 - q P(L > k)) = 1 - mask_ratio`, solved for q."""
    if mask_ratio <= 0:
        return 0.0
    tails = span_lengths_at_least(span_lambda)

    def unmasked(q):
        return math.prod(1 - q * tail for tail in tails)

    low, high = 0.0, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if unmasked(middle) > 1 - mask_ratio else (low, middle)
    return (low + high) / 2


def corrupt(ids, seed, mask_id, ends=None, mask_ratio=0.3, span_lambda=3.0):
    """Corrupted copies of padded ids: sentences permuted (when `ends` is given), spans masked.

    Args:
        ids: int32 `(batch, length)`, each row ending with the end id, then padding.
        seed: int `(2,)` seed of the stateless draws.
        mask_id: the id of `MASK_TOKEN`.
        ends: `sentence_ends(tokenizer)` to permute sentences; None: no permutation.
        mask_ratio: the expected share of tokens masked.
        span_lambda: the mean of the Poisson span lengths.

    Returns:
        int32 `(batch, length)`: the corrupted rows, end id kept, 0-padded.
    """
    ids = tf.convert_to_tensor(ids, tf.int32)
    batch, length = tf.shape(ids)[0], tf.shape(ids)[1]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    ended = tf.cumsum(tf.cast(tf.equal(ids, END_ID), tf.int32), axis=1, exclusive=True) > 0
    fixed = tf.equal(ids, END_ID) | ended | tf.equal(ids, PAD_ID)
    if ends is not None:
        ids = _permute_sentences(ids, fixed, tf.gather(ends, ids), seeds[0])
    if mask_ratio <= 0:
        return ids
    # Spans may start MAX_SPAN positions before the row, so that its first tokens are masked
    # as often as any other.
    width = length + MAX_SPAN
    rate = span_start_rate(mask_ratio, span_lambda)
    starts = tf.random.stateless_uniform([batch, width], seeds[1]) < rate
    lengths = tf.random.stateless_poisson([batch, width], seeds[2], span_lambda, tf.int32)
    lengths = tf.clip_by_value(lengths, 1, MAX_SPAN)
    first = tf.range(width)[tf.newaxis, :] - MAX_SPAN  # where each draw's span starts
    position = tf.range(length)
    # covered[b, i]: a span (b, j) starts at or before i and reaches past it.
    reach = tf.where(starts, first + lengths, -1)  # (batch, width)
    covers = ((first[:, :, tf.newaxis] <= position[tf.newaxis, tf.newaxis, :])
              & (reach[:, :, tf.newaxis] > position[tf.newaxis, tf.newaxis, :]))
    masked = tf.reduce_any(covers, axis=1) & ~fixed
    # One mask token a run of masked tokens: the run's first becomes the mask, the rest go.
    previous = tf.concat([tf.zeros([batch, 1], tf.bool), masked[:, :-1]], axis=1)
    keep = ~(masked & previous) & tf.not_equal(ids, PAD_ID)
    ids = tf.where(masked, mask_id, ids)
    order = tf.argsort(tf.where(keep, position[tf.newaxis, :], length + position[tf.newaxis, :]),
                       axis=1, stable=True)
    return tf.gather(tf.where(keep, ids, PAD_ID), order, batch_dims=1)


def _permute_sentences(ids, fixed, is_end, seed):
    """The free tokens of each row in a random order of their sentences; fixed ones stay last."""
    batch, length = tf.shape(ids)[0], tf.shape(ids)[1]
    position = tf.range(length)[tf.newaxis, :]
    # A sentence starts after a token that ends one.
    sentence = tf.cumsum(tf.cast(is_end & ~fixed, tf.int32), axis=1, exclusive=True)
    keys = tf.random.stateless_uniform([batch, length], seed)  # one key a sentence number
    rank = tf.argsort(tf.argsort(keys, axis=1, stable=True), axis=1)
    token_key = tf.gather(rank, sentence, batch_dims=1) * length + position
    token_key = tf.where(fixed, length * length + position, token_key)
    order = tf.argsort(token_key, axis=1, stable=True)
    return tf.gather(ids, order, batch_dims=1)
