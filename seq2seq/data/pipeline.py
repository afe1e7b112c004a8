"""tf.data input pipelines: tokenize once, filter by length, shuffle, bucket, batch, prefetch.

Batches are `((source_ids, target_in_ids), target_out_ids, sample_weight)`, ready for
`Transformer.fit`: the target shifted right for teacher forcing (`target_in` starts with the
start id, `target_out` ends with the end id), and a sample weight that is 0 on padding, so the
loss ignores padding without a masked loss of its own.
"""

import numpy as np
import tensorflow as tf

from seq2seq.text.tokenizer import END_ID, START_ID


def encode_pairs(pairs, source_tokenizer, target_tokenizer, max_length, max_source_length=None):
    """Tokenizes all pairs in one batched call and drops those longer than `max_length`.

    With `max_source_length` (at most `max_length`), longer sources are cut to that many
    tokens, the end id included (`Tokenizer.encode_sources`, as `Translator` encodes its
    inputs), and only targets can drop a pair.

    Returns:
        `(source_ids, target_ids, dropped)`: ragged int32 tensors of the kept pairs (source
        ending with the end id, target without start or end) and the number dropped.
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
    return (
        tf.ragged.boolean_mask(sources, keep),
        tf.ragged.boolean_mask(targets, keep),
        int(tf.reduce_sum(tf.cast(~keep, tf.int32))),
    )


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

    def batch(rows):
        source = tf.gather(source_ids, rows).to_tensor()
        target = tf.gather(target_ids, rows).to_tensor()
        if static_shapes:
            # Sources hold at most max_length ids; targets at most max_length - 1 (+1 start/end).
            source = _pad_to(source, max_length)
            target = _pad_to(target, max_length - 1)
        return teacher_forcing(source, target)

    return dataset.map(batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


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
        return tf.data.Dataset.from_tensor_slices(
            (batches.row_starts(), batches.row_limits())
        ).map(lambda start, limit: values[start:limit])

    def _seed(self, epoch, stream):
        return tf.stack([tf.cast(self.seed, tf.int64), epoch * 2 + stream])


def lengths(ids):
    """Row lengths of a ragged tensor, as numpy (for statistics and benchmarks)."""
    return np.asarray(ids.row_lengths())
