"""tf.data input pipelines: tokenize once, filter by length, shuffle, bucket, batch, prefetch.

Batches are `((source_ids, target_in_ids), target_out_ids, sample_weight)`, ready for
`Transformer.fit`: the target shifted right for teacher forcing (`target_in` starts with the
start id, `target_out` ends with the end id), and a sample weight that is 0 on padding, so the
loss ignores padding without a masked loss of its own.
"""

import numpy as np
import tensorflow as tf

from seq2seq.data.denoising import corrupt
from seq2seq.data.noise import add_noise
from seq2seq.text.tokenizer import END_ID, START_ID


def encode_pairs(pairs, source_tokenizer, target_tokenizer, max_length, max_source_length=None,
                 return_kept=False):
    """Tokenizes all pairs in one batched call and drops those longer than `max_length`.

    With `max_source_length` (at most `max_length`), longer sources are cut to that many
    tokens, the end id included (`Tokenizer.encode_sources`, as `Translator` encodes its
    inputs), and only targets can drop a pair.

    Returns:
        `(source_ids, target_ids, dropped)`: ragged int32 tensors of the kept pairs (source
        ending with the end id, target without start or end) and the number dropped; with
        `return_kept`, also the bool `(pairs,)` mask of the pairs kept.
    """
    if not pairs:
        raise ValueError("encode_pairs received no pairs.")
    if max_source_length is not None and not 2 <= max_source_length <= max_length:
        raise ValueError(
            f"data.max_source_length={max_source_length}; expected 2 to model.max_length="
            f"{max_length} (one token and the end id)."
        )
    sources = source_tokenizer.encode_sources([s for s, _ in pairs], max_source_length)
    targets = target_tokenizer.tokenize([t for _, t in pairs])
    # +1: the start id (target_in) or end id (target_out) each side gains.
    keep = (sources.row_lengths() <= max_length) & (targets.row_lengths() + 1 <= max_length)
    encoded = (
        tf.ragged.boolean_mask(sources, keep),
        tf.ragged.boolean_mask(targets, keep),
        int(tf.reduce_sum(tf.cast(~keep, tf.int32))),
    )
    return (*encoded, keep) if return_kept else encoded


def teacher_forcing(source, target):
    """Padded `(source, target)` -> `((source, target_in), target_out, sample_weight)`."""
    start = tf.fill([tf.shape(target)[0], 1], START_ID)
    end = tf.fill([tf.shape(target)[0], 1], END_ID)
    # Rows are padded with 0: the end id goes at each row's own length, not at the batch's.
    lengths = tf.reduce_sum(tf.cast(target != 0, tf.int32), axis=1)
    target_in = tf.concat([start, target], axis=1)
    target_out = tf.concat([target, tf.zeros_like(end)], axis=1)
    positions = tf.range(tf.shape(target_out)[1])[tf.newaxis, :]
    target_out = tf.where(positions == lengths[:, tf.newaxis], END_ID, target_out)
    weights = tf.cast(target_out != 0, tf.float32)
    return (source, target_in), target_out, weights


def bucket_boundaries(max_length, min_length=8, step=1.25):
    """Geometric bucket upper bounds up to `max_length` (exclusive bounds, as tf.data uses)."""
    bounds, bound = [], min_length
    while bound < max_length:
        bounds.append(int(bound))
        bound = max(bound * step, bound + 1)
    return sorted(set(bounds)) + [max_length + 1]


def bucket_batch_sizes(bounds, batch_tokens, max_length):
    """Pairs per batch of each bucket of `bounds` (one more bucket than bounds) so that a
    batch padded to the bucket's longest fits `batch_tokens`."""
    # Padded target_in/out are one longer than the target: budget on max_length + 1.
    return [max(1, batch_tokens // min(b, max_length + 1)) for b in [*bounds, bounds[-1]]]


def make_dataset(
    source_ids,
    target_ids,
    batch_tokens=None,
    batch_size=None,
    max_length=128,
    shuffle=True,
    seed=0,
    repeat=False,
    static_shapes=False,
    noise=None,
    resample=None,
):
    """Batches of encoded pairs.

    Exactly one of `batch_tokens` and `batch_size` is given. With `batch_tokens`, pairs are
    bucketed by length (the longer of source and target) and each bucket's batch size is
    chosen so that `batch * padded length <= batch_tokens` for source and target alike; with
    `batch_size`, batches hold that many pairs, padded to their longest.

    Each epoch is planned at once, as a few vectorized ops over all pairs: a seeded
    permutation, a stable sort by bucket, consecutive runs cut into batches, the batches
    shuffled; a batch is then one gather of its rows. tf.data's `bucket_by_sequence_length`
    does the same one element at a time, at many times the CPU time per batch, taken from the
    training step's own threads (`bench/input_pipeline.py`).

    Args:
        source_ids, target_ids: ragged int32 tensors from `encode_pairs`.
        batch_tokens: token budget of a batch (padding included).
        batch_size: examples per batch.
        max_length: the longest sequence `encode_pairs` kept.
        shuffle: shuffle the pairs (and the batches) each epoch, seeded, before bucketing.
        seed: shuffle seed; the same seed gives the same batches, epoch after epoch.
        repeat: repeat forever (training by steps), each epoch shuffled anew.
        static_shapes: pad every batch to `max_length` and drop each epoch's last partial
            batch, for TPUs and multi-worker training, which need every batch (on every
            worker) to have the same shape. With `batch_tokens`, the batch size is
            `batch_tokens // max_length`.
        noise: None, or what is done to each batch's padded sources, seeded by `(seed, epoch,
            batch)`: a `SourceNoise` (`seq2seq.data.noise.add_noise`) or a `Corruption`
            (`seq2seq.data.denoising.corrupt`); anything with `apply(source, seed)`.
        resample: None, or a `Resampling`: each batch's sources (and targets) are segmented
            anew from their text by a sampling tokenizer (subword regularization). Batches are
            planned by the one-best lengths; a row whose sample is longer than `max_length`
            keeps its one-best ids.

    Returns:
        A `tf.data.Dataset` of `((source, target_in), target_out, sample_weight)`.
    """
    if (batch_tokens is None) == (batch_size is None):
        raise ValueError(
            f"Give exactly one of batch_tokens and batch_size; got batch_tokens={batch_tokens}, "
            f"batch_size={batch_size}."
        )
    if batch_tokens is not None and batch_tokens < max_length + 1:
        raise ValueError(
            f"batch_tokens={batch_tokens} cannot hold one sequence of max_length+1="
            f"{max_length + 1} tokens."
        )
    if int(source_ids.nrows()) == 0:
        raise ValueError("make_dataset received no pairs; an empty epoch would repeat forever.")
    if static_shapes or batch_size is not None:
        # One bucket: every pair, batches of one size.
        bounds = []
        sizes = [batch_size or max(1, batch_tokens // max_length)]
    else:
        bounds = bucket_boundaries(max_length)
        sizes = bucket_batch_sizes(bounds, batch_tokens, max_length)
    # Bucket i holds the pairs with bounds[i - 1] <= length < bounds[i].
    length = tf.maximum(source_ids.row_lengths(), target_ids.row_lengths() + 1)
    buckets = tf.searchsorted(tf.constant(bounds or [max_length + 2], tf.int64), length,
                              side="right")
    plan = _EpochPlan(buckets, tf.constant(sizes, tf.int64), shuffle, seed, static_shapes)
    epochs = tf.data.Dataset.counter() if repeat else tf.data.Dataset.range(1)
    dataset = epochs.flat_map(plan.batches)

    def batch(noise_seed, rows):
        source = tf.gather(source_ids, rows)
        target = tf.gather(target_ids, rows)
        if resample is not None:
            source, target = resample.batch(rows, source, target, max_length)
        source, target = source.to_tensor(), target.to_tensor()
        if noise is not None:
            source = noise.apply(source, noise_seed)
        if static_shapes:
            # Sources hold at most max_length ids; targets at most max_length - 1 (+1 start/end).
            source = _pad_to(source, max_length)
            target = _pad_to(target, max_length - 1)
        return teacher_forcing(source, target)

    return dataset.map(batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


class SourceNoise:
    """What `make_dataset` does to training sources (`seq2seq.data.noise`): the word-start
    table of the source vocabulary, and the rates."""

    def __init__(self, starts, drop=0.0, blank=0.0, shuffle_distance=0):
        self.starts = starts
        self.drop, self.blank, self.shuffle_distance = drop, blank, shuffle_distance

    def apply(self, source, seed):
        return add_noise(source, self.starts, seed, self.drop, self.blank, self.shuffle_distance)


class Corruption:
    """The denoising task's corruption of each batch's sources (`seq2seq.data.denoising`):
    the mask id, the sentence-end table (None: no permutation) and the rates."""

    def __init__(self, mask_id, ends=None, mask_ratio=0.3, span_lambda=3.0):
        self.mask_id, self.ends = mask_id, ends
        self.mask_ratio, self.span_lambda = mask_ratio, span_lambda

    def apply(self, source, seed):
        return corrupt(source, seed, self.mask_id, self.ends, self.mask_ratio, self.span_lambda)


class Resampling:
    """Sampled segmentations of each batch (`make_dataset`): the texts of the encoded pairs, in
    their order, and the sampling tokenizers (`Tokenizer.sampled`; None keeps that side's
    one-best ids)."""

    def __init__(self, source_texts, target_texts, source=None, target=None,
                 max_source_length=None):
        self.source_texts = tf.constant(source_texts, tf.string)
        self.target_texts = tf.constant(target_texts, tf.string)
        self.source, self.target = source, target
        self.max_source_length = max_source_length

    def batch(self, rows, source, target, max_length):
        """Ragged `(source, target)` ids of `rows`, sampled where a tokenizer is given; a row
        whose sample is longer than `max_length` (or `max_length - 1`, targets) keeps its
        one-best ids."""
        if self.source is not None:
            texts = tf.gather(self.source_texts, rows)
            if self.max_source_length:  # sources are cut anyway (summarization)
                source = self.source.encode_sources(texts, self.max_source_length)
            else:
                source = _within(self.source.encode_sources(texts), source, max_length)
        if self.target is not None:
            target = _within(self.target.tokenize(tf.gather(self.target_texts, rows)), target,
                             max_length - 1)
        return source, target


def _within(sampled, one_best, limit):
    """Rows of ragged `sampled` ids, or of `one_best` where a sampled row exceeds `limit`."""
    sampled, one_best = sampled.to_tensor(), one_best.to_tensor()
    width = tf.maximum(tf.shape(sampled)[1], tf.shape(one_best)[1])
    pad = lambda x: tf.pad(x, [[0, 0], [0, width - tf.shape(x)[1]]])  # noqa: E731
    too_long = tf.reduce_sum(tf.cast(sampled != 0, tf.int32), axis=1) > limit
    return tf.RaggedTensor.from_tensor(tf.where(too_long[:, None], pad(one_best), pad(sampled)),
                                       padding=0)


def _pad_to(ids, length):
    padded = tf.pad(ids, [[0, 0], [0, length - tf.shape(ids)[1]]])
    return tf.ensure_shape(padded, [None, length])


class _EpochPlan:
    """The batches of one epoch, as row indices: `batches(epoch)` -> a dataset of index rows."""

    def __init__(self, buckets, sizes, shuffle, seed, drop_partial):
        self.buckets = buckets
        self.sizes = sizes
        self.shuffle = shuffle
        self.seed = seed
        self.drop_partial = drop_partial

    def batches(self, epoch):
        count = tf.shape(self.buckets, out_type=tf.int64)[0]
        rows = tf.range(count)
        if self.shuffle:
            rows = tf.random.experimental.stateless_shuffle(rows, seed=self._seed(epoch, 0))
        # Stable: within a bucket the pairs keep their shuffled order.
        order = tf.argsort(tf.gather(self.buckets, rows), stable=True)
        rows = tf.gather(rows, order)
        bucket = tf.gather(self.buckets, rows)
        num_buckets = int(self.sizes.shape[0])
        counts = tf.math.bincount(bucket, minlength=num_buckets, maxlength=num_buckets,
                                  dtype=tf.int64)
        # Position within the bucket, the bucket's first batch, the batch of each row.
        rank = tf.range(count) - tf.gather(tf.cumsum(counts, exclusive=True), bucket)
        if self.drop_partial:
            counts = counts // self.sizes * self.sizes
        batches_per_bucket = (counts + self.sizes - 1) // self.sizes
        first_batch = tf.cumsum(batches_per_bucket, exclusive=True)
        batch = tf.gather(first_batch, bucket) + rank // tf.gather(self.sizes, bucket)
        keep = rank < tf.gather(counts, bucket)  # drops what `drop_partial` cut
        batches = tf.RaggedTensor.from_value_rowids(
            tf.boolean_mask(rows, keep), tf.boolean_mask(batch, keep),
            nrows=tf.reduce_sum(batches_per_bucket),
        )
        if self.shuffle:
            order = tf.random.experimental.stateless_shuffle(
                tf.range(batches.nrows()), seed=self._seed(epoch, 1)
            )
            batches = tf.gather(batches, order)
        values = batches.values
        # Each batch's noise seed: the shuffle seed and the epoch, and the batch's number.
        numbers = tf.range(batches.nrows())
        stream = tf.cast(self.seed, tf.int64) * 1_000_003 + epoch
        noise_seeds = tf.stack([tf.fill(tf.shape(numbers), stream), numbers], axis=1)
        return tf.data.Dataset.from_tensor_slices(
            (noise_seeds, batches.row_starts(), batches.row_limits())
        ).map(lambda noise_seed, start, limit: (noise_seed, values[start:limit]))

    def _seed(self, epoch, stream):
        return tf.stack([tf.cast(self.seed, tf.int64), epoch * 2 + stream])


def lengths(ids):
    """Row lengths of a ragged tensor, as numpy (for statistics and benchmarks)."""
    return np.asarray(ids.row_lengths())
