"""The denoising corruption (BART text infilling and sentence permutation), checked against a
word-by-word reading of what it must do, a simulation of the span process, and the pipeline's
batches."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from seq2seq.data import denoising
from seq2seq.data.pipeline import Corruption, encode_pairs, make_dataset
from seq2seq.text.tokenizer import END_ID, train_tokenizer

MASK = 4
ENDS = tf.constant([i in (19, 29, 39) for i in range(60)])  # 19, 29, 39 end sentences


def rows(*tokens, width=None):
    """Padded id rows: each row its tokens, then the end id."""
    flat = [list(row) + [END_ID] for row in tokens]
    width = width or max(map(len, flat))
    return tf.constant([r + [0] * (width - len(r)) for r in flat], tf.int32)


def gaps(original, corrupted):
    """Reads a corrupted row against its original (unique ids): the kept tokens must be the
    original's in order, each mask must stand for a run of one or more missing tokens, and
    every missing run must have its mask. Returns the number of masked tokens."""
    body = [t for t in original if t not in (0, END_ID)]
    out = [t for t in corrupted if t not in (0, END_ID)]
    assert list(corrupted).count(END_ID) == 1 and corrupted[len(out)] == END_ID
    masked, i = 0, 0
    for position, token in enumerate(out):
        if token == MASK:
            assert position == 0 or out[position - 1] != MASK, "two masks for one run"
            nxt = out[position + 1] if position + 1 < len(out) else None
            start = i
            while i < len(body) and body[i] != nxt:
                i += 1
            assert i > start, "a mask where nothing is missing"
            masked += i - start
        else:
            assert body[i] == token, "a kept token out of order"
            i += 1
    assert i == len(body), "tokens missing without a mask"
    return masked


def test_each_masked_run_becomes_one_mask_and_the_rest_is_kept_in_order():
    ids = rows(list(range(10, 50)), list(range(10, 30)), width=42)
    for seed in range(40):
        out = denoising.corrupt(ids, [seed, 1], MASK, None, 0.3, 3.0).numpy()
        for original, corrupted in zip(ids.numpy(), out):
            gaps(original, corrupted)


def test_the_masked_share_is_the_configured_ratio():
    ids = rows(*[list(range(10, 58))] * 2000)
    for ratio, span_lambda in ((0.3, 3.0), (0.15, 1.0), (0.5, 3.5)):
        out = denoising.corrupt(ids, [7, ratio], MASK, None, ratio, span_lambda).numpy()
        share = np.mean([gaps(o, c) / 48 for o, c in zip(ids.numpy(), out)])
        assert share == pytest.approx(ratio, abs=0.01), (ratio, span_lambda)


def test_the_span_start_rate_agrees_with_a_simulation_of_the_spans():
    # The oracle: a plain-numpy run of the process the rate is solved for (starts at rate q,
    # lengths max(Poisson(lambda), 1)) on a long line, far from its ends.
    rng = np.random.default_rng(0)
    for ratio, span_lambda in ((0.3, 3.0), (0.2, 2.0)):
        q = denoising.span_start_rate(ratio, span_lambda)
        n = 400_000
        covered = np.zeros(n + 50, bool)
        for start in np.flatnonzero(rng.random(n) < q):
            covered[start:start + max(rng.poisson(span_lambda), 1)] = True
        assert covered[50:n].mean() == pytest.approx(ratio, abs=0.005)
    assert denoising.span_start_rate(0.0, 3.0) == 0.0


def test_sentences_are_permuted_whole_and_every_order_occurs():
    a, b, c = list(range(10, 20)), list(range(20, 30)), list(range(30, 40))
    ids = rows(a + b + c, width=34)
    orders = set()
    for seed in range(60):
        out = denoising.corrupt(ids, [seed, 0], MASK, ENDS, 0.0).numpy()[0]
        assert out[30] == END_ID and list(out[31:]) == [0, 0, 0]
        found = tuple(s[0] for s in (out[:10], out[10:20], out[20:30]))
        assert sorted(map(list, (out[:10], out[10:20], out[20:30]))) == [a, b, c]
        orders.add(found)
    assert orders == set(itertools.permutations((10, 20, 30)))


def test_a_zero_ratio_without_permutation_changes_nothing():
    ids = rows(list(range(10, 40)), list(range(10, 15)))
    assert np.array_equal(denoising.corrupt(ids, [1, 2], MASK, None, 0.0).numpy(), ids.numpy())


def test_the_same_seed_corrupts_alike_and_another_seed_otherwise():
    ids = rows(*[list(range(10, 50))] * 8)
    first = denoising.corrupt(ids, [3, 4], MASK, ENDS, 0.3, 3.0).numpy()
    assert np.array_equal(first, denoising.corrupt(ids, [3, 4], MASK, ENDS, 0.3, 3.0).numpy())
    assert not np.array_equal(first, denoising.corrupt(ids, [3, 5], MASK, ENDS, 0.3).numpy())


def test_the_pipeline_corrupts_sources_and_keeps_targets_intact():
    texts = [f"The file number {i} is open. Close it now." for i in range(60)]
    tokenizer = train_tokenizer(texts, vocabulary_size=60, reserved_tokens=["<mask>"])
    mask_id = tokenizer.token_id("<mask>")
    sources, targets, _ = encode_pairs([(t, t) for t in texts], tokenizer, tokenizer, 40)
    corruption = Corruption(mask_id, denoising.sentence_ends(tokenizer), 0.3, 3.0)
    dataset = make_dataset(sources, targets, batch_size=60, max_length=40, seed=1,
                           noise=corruption)
    (source, _), target_out, _ = next(iter(dataset))
    assert sorted(t.decode() for t in tokenizer.detokenize(target_out).numpy()) == sorted(texts)
    source = source.numpy()
    assert (source == mask_id).any(axis=1).mean() > 0.9
    lengths = (source > 0).sum(axis=1)
    assert (lengths <= sources.row_lengths().numpy().max()).all()
    assert (source[np.arange(60), lengths - 1] == END_ID).all()


def test_sentence_ends_are_the_tokens_ending_in_a_full_stop():
    tokenizer = train_tokenizer(["Open it. Close it! Why? Yes."] * 20, vocabulary_size=40)
    ends = denoising.sentence_ends(tokenizer).numpy()
    tokens = [t.decode() for t in tokenizer.id_to_token(tf.range(len(ends))).numpy()]
    assert {t for t, e in zip(tokens, ends) if e} == {
        t for t in tokens if t.endswith((".", "!", "?"))} != set()
