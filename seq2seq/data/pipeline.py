"""tf.data input pipelines: tokenize once, filter by length, shuffle, bucket, batch, prefetch.

Batches are `((source_ids, target_in_ids), target_out_ids, sample_weight)`, ready for
`Transformer.fit`: the target shifted right for teacher forcing (`target_in` starts with the
start id, `target_out` ends with the end id), and a sample weight that is 0 on padding, so the
loss ignores padding without a masked loss of its own.
"""

import numpy as np
import tensorflow as tf

from seq2seq.text.tokenizer import END_ID, START_ID


def encode_pairs(pairs, source_tokenizer, target_tokenizer, max_length):
    """Tokenizes all pairs in one batched call and drops those longer than `max_length`.

    Returns:
        `(source_ids, target_ids, dropped)`: ragged int32 tensors of the kept pairs (source
        ending with the end id, target without start or end) and the number dropped.
    """
    if not pairs:
        raise ValueError("encode_pairs received no pairs.")
    sources = source_tokenizer.tokenize([s for s, _ in pairs])
    targets = target_tokenizer.tokenize([t for _, t in pairs])
    end = tf.fill([sources.nrows(), 1], END_ID)
    sources = tf.concat([sources, tf.RaggedTensor.from_tensor(end)], axis=1)
    # +1: the start id (target_in) or end id (target_out) each side gains.
    keep = (sources.row_lengths() <= max_length) & (targets.row_lengths() + 1 <= max_length)
    return (
        tf.ragged.boolean_mask(sources, keep),
        tf.ragged.boolean_mask(targets, keep),
        int(tf.reduce_sum(tf.cast(~keep, tf.int32))),
    )


def _teacher_forcing(source, target):
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


def make_dataset(
    source_ids,
    target_ids,
    batch_tokens=None,
    batch_size=None,
    max_length=128,
    shuffle=True,
    seed=0,
    repeat=False,
    shuffle_buffer=None,
    static_shapes=False,
):
    """Batches of encoded pairs.

    Exactly one of `batch_tokens` and `batch_size` is given. With `batch_tokens`, pairs are
    bucketed by length (the longer of source and target) and each bucket's batch size is
    chosen so that `batch * padded length <= batch_tokens` for source and target alike; with
    `batch_size`, batches hold that many pairs, padded to their longest.

    Args:
        source_ids, target_ids: ragged int32 tensors from `encode_pairs`.
        batch_tokens: token budget of a batch (padding included).
        batch_size: examples per batch.
        max_length: the longest sequence `encode_pairs` kept.
        shuffle: shuffle the pairs each epoch (seeded) before bucketing.
        seed: shuffle seed; the same seed gives the same batches.
        repeat: repeat forever (training by steps).
        shuffle_buffer: shuffle buffer size; default the whole dataset.
        static_shapes: pad every batch to `max_length` and drop the last partial batch, for
            TPUs and multi-worker training, which need every batch (on every worker) to have
            the same shape. With `batch_tokens`, the batch size is `batch_tokens // max_length`.

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
    count = int(source_ids.nrows())
    # Index the ragged tensors (slicing them directly yields ragged elements that padded_batch
    # and bucket_by_sequence_length refuse).
    dataset = tf.data.Dataset.range(count).map(
        lambda i: (source_ids[i], target_ids[i]), num_parallel_calls=tf.data.AUTOTUNE
    )
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer or count, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    if static_shapes:
        size = batch_size or max(1, batch_tokens // max_length)
        # Sources hold at most max_length ids; targets at most max_length - 1 (+1 start/end).
        dataset = dataset.padded_batch(
            size, padded_shapes=([max_length], [max_length - 1]), drop_remainder=True
        )
    elif batch_size is not None:
        dataset = dataset.padded_batch(batch_size)
    else:
        bounds = bucket_boundaries(max_length)
        # Padded target_in/out are one longer than the target: budget on max_length + 1.
        sizes = [max(1, batch_tokens // min(b, max_length + 1)) for b in [*bounds, bounds[-1]]]
        dataset = dataset.bucket_by_sequence_length(
            lambda s, t: tf.maximum(tf.shape(s)[0], tf.shape(t)[0] + 1),
            bucket_boundaries=bounds,
            bucket_batch_sizes=sizes,
            pad_to_bucket_boundary=False,
        )
    return dataset.map(_teacher_forcing, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE
    )


def lengths(ids):
    """Row lengths of a ragged tensor, as numpy (for statistics and benchmarks)."""
    return np.asarray(ids.row_lengths())
