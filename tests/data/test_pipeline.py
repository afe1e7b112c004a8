"""tf.data pipeline: teacher forcing, token budgets, bucketing, seeded shuffling."""

import collections
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from seq2seq.data.pipeline import _EpochPlan, bucket_boundaries, encode_pairs, make_dataset
from seq2seq.data.readers import read_tsv
from seq2seq.text.tokenizer import END_ID, START_ID, train_tokenizer

FIXTURE = pathlib.Path(__file__).parents[1] / "fixtures" / "libreoffice-help.en-de.tsv"
PAIRS = read_tsv(FIXTURE)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([s for p in PAIRS for s in p], vocabulary_size=800)


@pytest.fixture(scope="module")
def encoded(tokenizer):
    return encode_pairs(PAIRS, tokenizer, tokenizer, max_length=48)


def ragged(rows):
    return tf.ragged.constant(rows, dtype=tf.int32)


def test_teacher_forcing_shifts_targets_and_weights_padding():
    source = ragged([[5, 6, END_ID], [7, END_ID]])
    target = ragged([[8, 9, 10], [11]])
    dataset = make_dataset(source, target, batch_size=2, shuffle=False, max_length=8)
    (source_batch, target_in), target_out, weights = next(iter(dataset))
    np.testing.assert_array_equal(source_batch, [[5, 6, END_ID], [7, END_ID, 0]])
    np.testing.assert_array_equal(target_in, [[START_ID, 8, 9, 10], [START_ID, 11, 0, 0]])
    np.testing.assert_array_equal(target_out, [[8, 9, 10, END_ID], [11, END_ID, 0, 0]])
    np.testing.assert_array_equal(weights, [[1, 1, 1, 1], [1, 1, 0, 0]])


def test_encode_appends_end_to_sources_and_filters_by_length(encoded):
    sources, targets, dropped = encoded
    assert int(sources.nrows()) + dropped == len(PAIRS)
    assert dropped > 0  # the fixture has paragraphs longer than 48 pieces
    lengths = sources.row_lengths().numpy()
    assert lengths.max() <= 48 and targets.row_lengths().numpy().max() + 1 <= 48
    last = tf.gather(sources.flat_values, sources.row_limits() - 1).numpy()
    assert (last == END_ID).all()


def test_max_source_length_cuts_long_sources_instead_of_dropping_their_pairs(tokenizer):
    whole, targets, _ = encode_pairs(PAIRS, tokenizer, tokenizer, max_length=10_000)
    sources, kept_targets, dropped = encode_pairs(PAIRS, tokenizer, tokenizer, max_length=48,
                                                  max_source_length=12)
    # Only a target over 47 pieces (+1 for the start or end id) drops a pair now.
    keep = [len(t) + 1 <= 48 for t in targets.to_list()]
    assert dropped == keep.count(False) > 0
    kept = [row for row, k in zip(whole.to_list(), keep) if k]
    assert max(len(row) for row in kept) > 48  # sources the filter alone would have dropped
    assert sources.to_list() == [row[:-1][:11] + [END_ID] for row in kept]
    assert kept_targets.to_list() == [t for t, k in zip(targets.to_list(), keep) if k]
    with pytest.raises(ValueError, match="data.max_source_length=49; expected 2 to model"):
        encode_pairs(PAIRS, tokenizer, tokenizer, max_length=48, max_source_length=49)


def epoch(dataset):
    return [(s.numpy(), ti.numpy(), w.numpy()) for (s, ti), _, w in dataset]


def test_token_budget_is_respected_and_every_pair_appears_once(encoded):
    sources, targets, _ = encoded
    batches = epoch(make_dataset(sources, targets, batch_tokens=400, max_length=48, seed=3))
    for source, target_in, _ in batches:
        assert source.size <= 400 and target_in.size <= 400
    assert sum(len(s) for s, _, _ in batches) == int(sources.nrows())
    # Every real target token is there exactly once (one weight per target_out token).
    total = sum(w.sum() for _, _, w in batches)
    assert total == int(targets.row_lengths().numpy().sum()) + int(sources.nrows())


def test_bucketing_pads_far_less_than_random_batches(encoded):
    sources, targets, _ = encoded

    def padding_share(batches):
        real = sum(w.sum() for _, _, w in batches)
        return 1 - real / sum(w.size for _, _, w in batches)

    bucketed = padding_share(epoch(make_dataset(sources, targets, batch_tokens=600, max_length=48)))
    plain = padding_share(epoch(make_dataset(sources, targets, batch_size=16, max_length=48)))
    assert bucketed < 0.2 < plain


def pair_counts(batches):
    """How often each source (padding stripped) occurs in `batches`."""
    return collections.Counter(
        tuple(row[row != 0]) for source, _, _ in batches for row in source
    )


def test_each_epoch_of_a_repeated_dataset_holds_every_pair_once(encoded):
    sources, targets, _ = encoded
    expected = collections.Counter(tuple(row) for row in sources.to_list())
    single = epoch(make_dataset(sources, targets, batch_tokens=400, max_length=48, seed=3))
    stream = iter(make_dataset(sources, targets, batch_tokens=400, max_length=48, seed=3,
                               repeat=True))
    epochs = [epoch(next(stream) for _ in single) for _ in range(3)]
    for batches in epochs:
        assert pair_counts(batches) == expected
    # The first epoch is the unrepeated dataset's; each later one is shuffled anew.
    assert all((a[0] == b[0]).all() for a, b in zip(single, epochs[0]))
    assert [b[0].shape for b in epochs[1]] != [b[0].shape for b in epochs[0]]
    assert [b[0].shape for b in epochs[2]] != [b[0].shape for b in epochs[1]]


def test_static_shapes_pad_every_batch_to_max_length(encoded):
    sources, targets, _ = encoded
    batches = epoch(make_dataset(sources, targets, batch_tokens=480, max_length=48,
                                 static_shapes=True))
    size = 480 // 48
    assert len(batches) == int(sources.nrows()) // size  # the last partial batch is dropped
    for source, target_in, weights in batches:
        assert source.shape == (size, 48) and target_in.shape == weights.shape == (size, 48)


def test_unshuffled_batches_keep_the_order_of_the_pairs(encoded):
    sources, targets, _ = encoded
    batches = epoch(make_dataset(sources, targets, batch_size=7, max_length=48, shuffle=False))
    rows = [tuple(row[row != 0]) for source, _, _ in batches for row in source]
    assert rows == [tuple(row) for row in sources.to_list()]


@pytest.mark.parametrize("drop_partial, expected", [
    (False, [[0, 2], [5], [1, 3], [4, 6]]),
    (True, [[0, 2], [1, 3], [4, 6]]),  # bucket 0's third pair fills no batch
])
def test_an_epoch_plan_cuts_each_bucket_into_batches_in_order(drop_partial, expected):
    buckets = tf.constant([0, 1, 0, 1, 1, 0, 1], tf.int64)
    plan = _EpochPlan(buckets, tf.constant([2, 2], tf.int64), shuffle=False, seed=0,
                      drop_partial=drop_partial)
    batches = [rows.numpy().tolist() for _, rows in plan.batches(tf.constant(0, tf.int64))]
    assert batches == expected


def test_bucket_boundaries_cover_max_length():
    bounds = bucket_boundaries(48)
    assert bounds == sorted(bounds) and bounds[0] == 8 and bounds[-1] == 49


def test_seeded_shuffling_is_reproducible(encoded):
    sources, targets, _ = encoded
    first = epoch(make_dataset(sources, targets, batch_size=32, max_length=48, seed=5))
    again = epoch(make_dataset(sources, targets, batch_size=32, max_length=48, seed=5))
    other = epoch(make_dataset(sources, targets, batch_size=32, max_length=48, seed=6))
    assert all((a[0] == b[0]).all() for a, b in zip(first, again))
    assert not all(a[0].shape == b[0].shape and (a[0] == b[0]).all() for a, b in zip(first, other))


def test_batching_arguments_are_checked(encoded):
    sources, targets, _ = encoded
    with pytest.raises(ValueError, match="exactly one of batch_tokens and batch_size"):
        make_dataset(sources, targets, batch_tokens=100, batch_size=4)
    with pytest.raises(ValueError, match="batch_tokens=20 cannot hold one sequence"):
        make_dataset(sources, targets, batch_tokens=20, max_length=48)
