"""Search strategies on a scripted decode step over a toy alphabet: exact strings and scores."""

import itertools
import math

import numpy as np
import pytest
from keras import ops

from seq2seq.decoding import BeamSearch, GreedySearch, Sampling, build
from seq2seq.decoding.beam_search import coverage_penalty, length_penalty

PAD, START, END = 0, 1, 2
ALPHABET = {3: "a", 4: "b", 5: "c"}
VOCABULARY = 6


def transitions(*rows):
    """A (VOCABULARY, VOCABULARY) table of next-token probabilities from `{prev: {next: p}}`."""
    table = np.full((VOCABULARY, VOCABULARY), 1e-9)
    for previous, probabilities in rows:
        for token, p in probabilities.items():
            table[previous, token] = p
    return table / table.sum(axis=1, keepdims=True)


# Sentence 0 prefers "a" then "c c", sentence 1 prefers "b"; sentence 2 ends "a" and "bc" early
# while "bcc..." goes on, more probable than "bc".
TABLES = np.stack([
    transitions(
        (START, {3: 0.6, 4: 0.4}),
        (3, {END: 0.45, 5: 0.55}),
        (4, {5: 0.9, END: 0.1}),
        (5, {5: 0.4, END: 0.6}),
    ),
    transitions(
        (START, {4: 0.7, 5: 0.3}),
        (4, {END: 0.6, 3: 0.4}),
        (5, {END: 1.0}),
        (3, {END: 0.8, 4: 0.2}),
    ),
    transitions(
        (START, {3: 0.5, 4: 0.5}),
        (3, {END: 1.0}),
        (4, {5: 0.99, END: 0.01}),
        (5, {5: 0.9, END: 0.1}),
    ),
])


def scripted_next(prompt, cache, index):
    """Markov decode step: log p(next | previous token) of the cached sentence's table.

    The cache holds each row's sentence id, so a search that mixes up rows (beam gathering,
    batching) gets the wrong distributions.
    """
    previous = ops.take_along_axis(prompt, ops.reshape(index - 1, (1, 1)) * 0 + index - 1, 1)
    rows = ops.stack([cache["sentence"], previous[:, 0]], axis=1)
    logits = ops.log(ops.convert_to_tensor(TABLES, "float32"))
    flat = ops.reshape(logits, (-1, VOCABULARY))
    step = ops.take(flat, rows[:, 0] * VOCABULARY + rows[:, 1], axis=0)
    return step, None, cache


def cache_for(sentences):
    return {"sentence": ops.convert_to_tensor(sentences, "int32")}


def text(tokens):
    out = []
    for t in tokens[1:]:
        if t == END:
            break
        out.append(ALPHABET[int(t)])
    return "".join(out)


def log_prob(sentence, hypothesis):
    """Independent scoring of a hypothesis (a string), end id included."""
    tokens = [START] + [k for c in hypothesis for k, v in ALPHABET.items() if v == c] + [END]
    return sum(math.log(TABLES[sentence][a, b]) for a, b in zip(tokens, tokens[1:]))


def brute_force_best(sentence, max_tokens, alpha, n):
    """The n best finished hypotheses of up to `max_tokens` tokens (end included), by exhaustive
    enumeration."""
    scored = []
    for length in range(0, max_tokens):
        for letters in itertools.product("abc", repeat=length):
            hypothesis = "".join(letters)
            score = log_prob(sentence, hypothesis) / ((5 + length + 1) / 6) ** alpha
            scored.append((score, hypothesis))
    scored.sort(reverse=True)
    return scored[:n]


def test_greedy_strings_and_scores():
    result = GreedySearch()(scripted_next, cache_for([0, 1]), 2, 8)
    tokens, scores = np.asarray(result.tokens), np.asarray(result.scores)
    assert tokens.shape == (2, 1, 8)
    assert [text(t[0]) for t in tokens] == ["ac", "b"]
    np.testing.assert_allclose(scores[:, 0], [log_prob(0, "ac"), log_prob(1, "b")], atol=1e-5)
    # After the end id: padding.
    np.testing.assert_array_equal(tokens[1, 0], [START, 4, END, PAD, PAD, PAD, PAD, PAD])


def test_min_length_forbids_an_early_end():
    result = GreedySearch(min_length=3)(scripted_next, cache_for([1]), 1, 8)
    hypothesis = text(np.asarray(result.tokens)[0, 0])
    assert len(hypothesis) >= 3
    assert hypothesis == "bab"


def test_max_length_cuts_unfinished_hypotheses():
    result = GreedySearch()(scripted_next, cache_for([0]), 1, 3)
    tokens = np.asarray(result.tokens)[0, 0]
    np.testing.assert_array_equal(tokens, [START, 3, 5])  # "ac", no room for the end id


@pytest.mark.parametrize("alpha", [0.0, 0.6, 3.0])
def test_beam_finds_the_exhaustive_n_best(alpha):
    search = BeamSearch(beam_size=4, alpha=alpha, n_best=3)
    result = search(scripted_next, cache_for([0, 1]), 2, 6)
    tokens, scores = np.asarray(result.tokens), np.asarray(result.scores)
    for sentence in (0, 1):
        expected = brute_force_best(sentence, 5, alpha, 3)
        assert [text(t) for t in tokens[sentence]] == [h for _, h in expected]
        np.testing.assert_allclose(scores[sentence], [s for s, _ in expected], atol=1e-5)


def test_length_penalty_flips_the_order_of_two_hypotheses():
    # Sentence 0: "a" (p = .6 * .45 = .27, 2 tokens) against "bc" (p = .4 * .9 * .6 = .216,
    # 3 tokens). Without penalty the short one wins (-1.31 > -1.53); alpha = 2 divides the short
    # one's log-prob by ((5+2)/6)^2 = 1.36 and the long one's by ((5+3)/6)^2 = 1.78, and the
    # order flips (-0.96 < -0.86).
    assert log_prob(0, "a") > log_prob(0, "bc")
    assert log_prob(0, "a") / ((5 + 2) / 6) ** 2 < log_prob(0, "bc") / ((5 + 3) / 6) ** 2
    plain = BeamSearch(beam_size=4, alpha=0.0, n_best=4)(scripted_next, cache_for([0]), 1, 6)
    penalised = BeamSearch(beam_size=4, alpha=2.0, n_best=4)(scripted_next, cache_for([0]), 1, 6)
    plain_order = [text(t) for t in np.asarray(plain.tokens)[0]]
    penalised_order = [text(t) for t in np.asarray(penalised.tokens)[0]]
    assert plain_order.index("a") < plain_order.index("bc")
    assert penalised_order.index("bc") < penalised_order.index("a")
    assert plain_order[:2] == ["a", "bc"] and penalised_order[0] == "bc"
    np.testing.assert_allclose(
        np.asarray(penalised.scores)[0, 0], log_prob(0, "bc") / ((5 + 3) / 6) ** 2, atol=1e-5
    )
    np.testing.assert_allclose(float(length_penalty(3, 2.0)), ((5 + 3) / 6) ** 2, rtol=1e-6)


def test_beam_of_one_equals_greedy():
    greedy = GreedySearch()(scripted_next, cache_for([0, 1]), 2, 8)
    beam = BeamSearch(beam_size=1, alpha=0.0)(scripted_next, cache_for([0, 1]), 2, 8)
    np.testing.assert_array_equal(np.asarray(beam.tokens), np.asarray(greedy.tokens))
    np.testing.assert_allclose(np.asarray(beam.scores), np.asarray(greedy.scores), atol=1e-6)


# The scripted step's cross-attention over a two-token source, by the token it reads: the
# start id and "a" look at source token 0, "b" mostly at token 1, "c" at both.
ATTENTION = np.zeros((VOCABULARY, 2), "float32")
ATTENTION[[START, 3, 4, 5]] = [[0.9, 0.1], [0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]


def attending_next(prompt, cache, index):
    """`scripted_next` that also reports its cross-attention, as `Transformer.next` does."""
    logits, _, cache = scripted_next(prompt, cache, index)
    previous = ops.take(prompt, index - 1, axis=1)
    return logits, None, {**cache, "attention": ops.take(ATTENTION, previous, axis=0)}


def attending_cache(sentences):
    return {**cache_for(sentences), "attention": np.zeros((len(sentences), 2), "float32")}


def alignment_rows(hypothesis):
    """Independent alignments of a hypothesis: one row per token read, start id first."""
    read = [START] + [k for c in hypothesis for k, v in ALPHABET.items() if v == c]
    return ATTENTION[read]


def test_greedy_returns_the_alignment_of_every_token():
    result = GreedySearch()(attending_next, attending_cache([0, 1]), 2, 8)
    alignments = np.asarray(result.alignments)
    assert alignments.shape == (2, 1, 8, 2)
    for sentence, hypothesis in ((0, "ac"), (1, "b")):
        rows = alignment_rows(hypothesis)  # the steps that chose the letters and the end id
        np.testing.assert_allclose(alignments[sentence, 0, 1:len(rows) + 1], rows)
        assert not alignments[sentence, 0, 0].any()  # the start id was not chosen
        assert not alignments[sentence, 0, len(rows) + 1:].any()  # nothing after the end id


def test_coverage_penalty_flips_the_order_of_two_hypotheses():
    # Sentence 0: "a" reads START and "a", both looking at source token 0: coverage (1.8, 0.2),
    # penalty beta * log(0.2). "bc" also reads "b" and "c": coverage (1.6, 1.4), penalty 0.
    # Without the penalty "a" wins (-1.31 > -1.53); with beta = 0.2 it loses (-1.63).
    beta = 0.2
    a_score = log_prob(0, "a") + beta * math.log(0.2)
    assert log_prob(0, "a") > log_prob(0, "bc") > a_score
    plain = BeamSearch(beam_size=4, alpha=0.0, n_best=4)(
        attending_next, attending_cache([0]), 1, 6)
    covered = BeamSearch(beam_size=4, alpha=0.0, n_best=4, coverage_penalty=beta)(
        attending_next, attending_cache([0]), 1, 6)
    plain_order = [text(t) for t in np.asarray(plain.tokens)[0]]
    covered_order = [text(t) for t in np.asarray(covered.tokens)[0]]
    assert plain_order[:2] == ["a", "bc"]
    assert covered_order.index("bc") < covered_order.index("a")
    scores = dict(zip(covered_order, np.asarray(covered.scores)[0]))
    np.testing.assert_allclose(scores["a"], a_score, atol=1e-5)
    np.testing.assert_allclose(scores["bc"], log_prob(0, "bc"), atol=1e-5)
    # Each returned hypothesis carries its own alignments.
    for j, hypothesis in enumerate(covered_order):
        rows = alignment_rows(hypothesis)
        np.testing.assert_allclose(np.asarray(covered.alignments)[0, j, 1:len(rows) + 1], rows)


def test_coverage_penalty_beam_finds_the_exhaustive_n_best():
    alpha, beta = 0.6, 0.5

    def score(sentence, hypothesis):
        coverage = np.minimum(alignment_rows(hypothesis).sum(axis=0), 1.0)
        return (log_prob(sentence, hypothesis) / ((5 + len(hypothesis) + 1) / 6) ** alpha
                + beta * np.log(coverage).sum())

    search = BeamSearch(beam_size=4, alpha=alpha, n_best=3, coverage_penalty=beta)
    result = search(attending_next, attending_cache([0, 1]), 2, 6)
    for sentence in (0, 1):
        expected = sorted(
            ((score(sentence, "".join(h)), "".join(h))
             for n in range(5) for h in itertools.product("abc", repeat=n)),
            reverse=True)[:3]
        assert [text(t) for t in np.asarray(result.tokens)[sentence]] == [h for _, h in expected]
        np.testing.assert_allclose(
            np.asarray(result.scores)[sentence], [s for s, _ in expected], atol=1e-5)


def test_coverage_penalty_formula_and_padding():
    alignments = np.array([[[0.5, 0.25, 0.0], [0.75, 0.25, 0.0]]], "float32")  # 2 steps
    mask = np.array([[True, True, False]])  # the third source token is padding
    expected = 0.5 * (math.log(1.0) + math.log(0.5))
    np.testing.assert_allclose(float(coverage_penalty(alignments, mask, 0.5)[0]), expected,
                               rtol=1e-6)


def test_coverage_penalty_needs_the_attention():
    with pytest.raises(ValueError, match="coverage_penalty=0.2.*keeps none.*attention=True"):
        BeamSearch(coverage_penalty=0.2)(scripted_next, cache_for([0]), 1, 6)
    with pytest.raises(ValueError, match="coverage_penalty=-1; expected a weight >= 0"):
        BeamSearch(coverage_penalty=-1)


@pytest.mark.parametrize("search", [GreedySearch(), BeamSearch(beam_size=3, n_best=3)],
                         ids=["greedy", "beam"])
def test_a_length_limit_inside_a_larger_buffer_equals_a_smaller_buffer(search):
    small = search(scripted_next, cache_for([0, 1]), 2, 3)
    limited = search(scripted_next, cache_for([0, 1]), 2, 8, length_limit=ops.convert_to_tensor(3))
    tokens = np.asarray(limited.tokens)
    np.testing.assert_array_equal(tokens[..., :3], np.asarray(small.tokens))
    assert not tokens[..., 3:].any()
    np.testing.assert_allclose(np.asarray(limited.scores), np.asarray(small.scores), atol=1e-6)


def test_early_stopping_returns_finished_hypotheses():
    result = BeamSearch(beam_size=2, alpha=0.0, n_best=2, early_stopping=True)(
        scripted_next, cache_for([1]), 1, 8
    )
    hypotheses = [text(t) for t in np.asarray(result.tokens)[0]]
    assert hypotheses == ["b", "c"]


@pytest.mark.parametrize("beam_size, alpha", [(2, 0.0), (2, 2.0), (3, 0.6), (3, 2.0)])
@pytest.mark.parametrize("early_stopping", [False, True])
def test_a_sentence_decodes_alike_alone_and_in_a_batch(beam_size, alpha, early_stopping):
    search = BeamSearch(beam_size=beam_size, alpha=alpha, n_best=beam_size,
                        early_stopping=early_stopping)
    batch = search(scripted_next, cache_for([0, 1]), 2, 8)
    for sentence in (0, 1):
        alone = search(scripted_next, cache_for([sentence]), 1, 8)
        np.testing.assert_array_equal(np.asarray(batch.tokens)[sentence],
                                      np.asarray(alone.tokens)[0])
        np.testing.assert_allclose(np.asarray(batch.scores)[sentence],
                                   np.asarray(alone.scores)[0], atol=1e-6)
        # Room enough: every hypothesis is finished, and its score is its own (scored here
        # independently).
        for tokens, score in zip(np.asarray(alone.tokens)[0], np.asarray(alone.scores)[0]):
            assert END in tokens
            hypothesis = text(tokens)
            expected = log_prob(sentence, hypothesis) / ((5 + len(hypothesis) + 1) / 6) ** alpha
            assert score == pytest.approx(expected, abs=1e-5)


def test_early_stopping_returns_the_finished_not_a_longer_unfinished_one():
    # After step 3, "a" and "bc" have ended: the sentence is done. "bcc", alive, would score
    # higher at its length (-0.81 / 1.78 against "a"'s -0.69 / 1.36) but has no end.
    result = BeamSearch(beam_size=2, alpha=2.0, n_best=2, early_stopping=True)(
        scripted_next, cache_for([2]), 1, 8
    )
    tokens = np.asarray(result.tokens)[0]
    assert [text(t) for t in tokens] == ["a", "bc"] and all(END in t for t in tokens)
    np.testing.assert_allclose(np.asarray(result.scores)[0],
                               [log_prob(2, "a") / (7 / 6) ** 2, log_prob(2, "bc") / (8 / 6) ** 2],
                               atol=1e-5)


def test_beam_min_length():
    result = BeamSearch(beam_size=3, alpha=0.0, min_length=2)(scripted_next, cache_for([1]), 1, 8)
    assert len(text(np.asarray(result.tokens)[0, 0])) >= 2


def test_sampling_is_seeded_and_respects_top_k():
    def sample(seed, **options):
        search = Sampling(seed=seed, **options)
        return np.asarray(search(scripted_next, cache_for([0] * 64), 64, 6).tokens)

    a, b = sample(3), sample(3)
    np.testing.assert_array_equal(a, b)
    assert len({text(t[0]) for t in a}) > 3  # real sampling, not argmax
    greedy_like = sample(5, top_k=1)
    assert {text(t[0]) for t in greedy_like} == {"ac"}
    nucleus = sample(7, top_p=0.5)  # from START only "a" (0.6) is needed to reach 0.5
    assert {text(t[0])[0] for t in nucleus} == {"a"}


def test_sampling_temperature_sharpens():
    cold = Sampling(temperature=0.01, seed=1)(scripted_next, cache_for([0] * 32), 32, 6)
    assert {text(t[0]) for t in np.asarray(cold.tokens)} == {"ac"}


def test_strategy_registry_and_bad_options():
    assert isinstance(build("beam", beam_size=2), BeamSearch)
    with pytest.raises(ValueError, match="'nucleus'; expected one of greedy, beam, sampling"):
        build("nucleus")
    with pytest.raises(ValueError, match="beam_size with decoding strategy 'greedy'; expected "
                                         "its settings: min_length, max_length"):
        build("greedy", beam_size=4)
    with pytest.raises(ValueError, match="n_best=5; expected 1 <= n_best <= beam_size=4"):
        BeamSearch(beam_size=4, n_best=5)
    with pytest.raises(ValueError, match="top_p=0; expected 0 < top_p <= 1"):
        Sampling(top_p=0)
