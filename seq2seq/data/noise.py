"""Source noise on token ids, applied to each training batch in tf.data (Lample et al., 2018).

Three kinds, each at its own rate, on words (a word is a token that starts one and the tokens
that continue it: SentencePiece's "▁" pieces start words, WordPiece's "##" pieces continue
them):

- word dropout: each word is dropped with probability `drop`;
- word blanking: each word is replaced by one blank token (the unknown id) with probability
  `blank`;
- local shuffle: each word moves at most `shuffle_distance` positions (word i sorts by
  `i + U(0, shuffle_distance + 1)`).

The end id (and every token after it: padding) never moves or goes. The draws are stateless
uniforms of a seed, so a batch's noise is a function of its seed: the pipeline seeds each
batch with `(data.shuffle_seed, epoch, batch)`, and a resumed run sees the noise it would have.
"""

import tensorflow as tf

from seq2seq.text.tokenizer import END_ID, PAD_ID, UNK_ID


def word_starts(tokenizer):
    """bool `(vocabulary_size,)`: whether each id's token starts a word."""
    tokens = tokenizer.tokens()
    if tokenizer.kind == "wordpiece":
        return tf.constant([not t.startswith("##") for t in tokens])
    return tf.constant([t.startswith("▁") for t in tokens])


def add_noise(ids, starts, seed, drop=0.0, blank=0.0, shuffle_distance=0, blank_id=UNK_ID):
    """Noised copies of padded source ids.

    Args:
        ids: int32 `(batch, length)` source ids, each row ending with the end id, then padding.
        starts: `word_starts(tokenizer)`.
        seed: int `(2,)` seed of the stateless draws.
        drop, blank: rates of word dropout and word blanking (0: none).
        shuffle_distance: how far a word may move (0: no shuffle).
        blank_id: the token a blanked word becomes.

    Returns:
        int32 `(batch, length)`: the noised rows, end id kept, 0-padded.
    """
    ids = tf.convert_to_tensor(ids, tf.int32)
    batch, length = tf.shape(ids)[0], tf.shape(ids)[1]
    position = tf.range(length)[tf.newaxis, :]
    ended = tf.cumsum(tf.cast(tf.equal(ids, END_ID), tf.int32), axis=1, exclusive=True) > 0
    fixed = tf.equal(ids, END_ID) | ended | tf.equal(ids, PAD_ID)
    # A word starts at a start token, at a row's first token and at every fixed token.
    starts_word = tf.gather(starts, ids) | tf.equal(position, 0) | fixed
    word = tf.cumsum(tf.cast(starts_word, tf.int32), axis=1) - 1  # (batch, length)
    words = length  # an upper bound on the words of a row
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    draws = [tf.random.stateless_uniform([batch, words], seeds[i]) for i in range(3)]
    free = tf.logical_not(tf.gather(fixed, _first_token(word, words), batch_dims=1))
    dropped = (draws[0] < drop) & free
    blanked = (draws[1] < blank) & free & ~dropped
    # Each token: dropped with its word; a blanked word keeps its first token, as the blank.
    first = tf.concat([tf.ones([batch, 1], tf.bool), word[:, 1:] != word[:, :-1]], axis=1)
    token_blanked = tf.gather(blanked, word, batch_dims=1)
    keep = ~tf.gather(dropped, word, batch_dims=1) & (~token_blanked | first)
    keep &= tf.not_equal(ids, PAD_ID)
    ids = tf.where(token_blanked, blank_id, ids)
    # Word order: free words by index + U(0, distance + 1), fixed ones after every free one.
    index = tf.cast(tf.range(words)[tf.newaxis, :], tf.float32)
    key = index + draws[2] * tf.cast(shuffle_distance + 1, tf.float32) * tf.cast(
        shuffle_distance > 0, tf.float32)
    key = tf.where(free, key, 2.0 * tf.cast(words, tf.float32) + index)
    rank = tf.argsort(tf.argsort(key, axis=1, stable=True), axis=1)  # each word's new place
    token_key = tf.gather(rank, word, batch_dims=1) * length + position
    token_key = tf.where(keep, token_key, words * length + position)  # removed tokens last
    order = tf.argsort(token_key, axis=1, stable=True)
    noised = tf.gather(tf.where(keep, ids, PAD_ID), order, batch_dims=1)
    return noised


def _first_token(word, words):
    """int32 `(batch, words)`: the position of each word's first token (0 for words a row
    does not have)."""
    batch, length = tf.shape(word)[0], tf.shape(word)[1]
    positions = tf.broadcast_to(tf.range(length)[tf.newaxis, :], [batch, length])
    rows = tf.broadcast_to(tf.range(batch)[:, tf.newaxis], [batch, length])
    indices = tf.stack([rows, word], axis=-1)
    # The smallest position of each (row, word): positions increase, so a min-scatter.
    first = tf.tensor_scatter_nd_min(tf.fill([batch, words], length), indices, positions)
    return tf.minimum(first, length - 1)
