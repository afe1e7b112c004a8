"""Target prefixes and terminology constraints on the scripted decode step of test_search:
exact hypotheses against brute-force enumeration."""

import itertools
import math

import numpy as np
import pytest
from keras import ops

from seq2seq.decoding import BeamSearch, GreedySearch
from seq2seq.decoding.constraints import advance, initial_state, round_robin_key
from seq2seq.layers.masking import MASK_LOGIT

PAD, START, END = 0, 1, 2
IDS = {"a": 3, "b": 4, "c": 5}
LETTERS = {token: letter for letter, token in IDS.items()}
VOCABULARY = 6
MAX_LENGTH = 7  # start id, up to 5 letters, end id


def markov_tables(seed=0):
    """Per sentence, p(next | previous) over the end id and the letters, drawn at random (no
    near-zero probabilities, so that no two hypotheses tie); the pad and start ids never
    follow."""
    rng = np.random.default_rng(seed)
    tables = np.zeros((3, VOCABULARY, VOCABULARY))
    for sentence in range(3):
        for previous in (START, *LETTERS):
            tables[sentence, previous, [END, *LETTERS]] = rng.dirichlet([1.0] * 4)
    return tables


TABLES = markov_tables()
LOGITS = np.where(TABLES > 0, np.log(np.maximum(TABLES, 1e-30)), MASK_LOGIT).astype("float32")


def markov_next(prompt, cache, index):
    """Decode step: log p(next | previous token) of the cached sentence's table."""
    previous = ops.take(prompt, index - 1, axis=1)
    flat = ops.reshape(ops.convert_to_tensor(LOGITS), (-1, VOCABULARY))
    return ops.take(flat, cache["sentence"] * VOCABULARY + previous, axis=0), None, cache


def log_prob(sentence, hypothesis):
    tokens = [START] + [IDS[c] for c in hypothesis] + [END]
    return sum(math.log(TABLES[sentence][a, b]) for a, b in zip(tokens, tokens[1:]))


def text(tokens):
    letters = []
    for token in tokens[1:]:
        if token == END:
            break
        letters.append(LETTERS[int(token)])
    return "".join(letters)


def phrases_of(batch):
    """`(batch, k, width)` int32 phrases from lists of strings ("bc" -> [4, 5])."""
    k = max(len(p) for p in batch)
    width = max([len(s) for p in batch for s in p] + [1])
    out = np.zeros((len(batch), max(k, 1), width), "int32")
    for b, phrases in enumerate(batch):
        for j, phrase in enumerate(phrases):
            out[b, j, : len(phrase)] = [IDS[c] for c in phrase]
    return out


def prefix_of(batch, max_length=MAX_LENGTH):
    out = np.zeros((len(batch), max_length), "int32")
    for b, prefix in enumerate(batch):
        out[b, 1 : len(prefix) + 1] = [IDS[c] for c in prefix]
    return out


def brute_force(sentence, alpha, n, keep=lambda h: True, letters=MAX_LENGTH - 2):
    """The n best finished hypotheses (up to `letters` letters and the end id) that `keep`
    accepts, by exhaustive enumeration: `[(score, hypothesis)]`."""
    scored = []
    for length in range(letters + 1):
        for hypothesis in map("".join, itertools.product("abc", repeat=length)):
            if keep(hypothesis):
                score = log_prob(sentence, hypothesis) / ((5 + length + 1) / 6) ** alpha
                scored.append((score, hypothesis))
    return sorted(scored, reverse=True)[:n]


def search(strategy, sentences, **options):
    cache = {"sentence": ops.convert_to_tensor(sentences, "int32")}
    result = strategy(markov_next, cache, len(sentences), MAX_LENGTH, **options)
    tokens = np.asarray(result.tokens)
    met = None if result.constraints_met is None else np.asarray(result.constraints_met)
    return [[text(t) for t in row] for row in tokens], np.asarray(result.scores), met


PHRASES = [["c"], ["bc"], ["a", "b"], ["ca", "b"], ["cc", "ba"], ["aa"], ["a", "b", "c"]]


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_a_wide_constrained_beam_finds_the_brute_force_n_best_that_contain_every_phrase(alpha):
    # 27 beams hold every hypothesis of 3 letters: wide enough for the search to be exact.
    strategy = BeamSearch(beam_size=27, alpha=alpha, n_best=2)
    for phrases in PHRASES:
        hypotheses, scores, met = search(strategy, [0, 1, 2],
                                         constraints=phrases_of([phrases] * 3))
        for sentence in (0, 1, 2):
            expected = brute_force(sentence, alpha, 2,
                                   keep=lambda h: all(p in h for p in phrases))
            assert hypotheses[sentence] == [h for _, h in expected], (sentence, phrases)
            np.testing.assert_allclose(scores[sentence], [s for s, _ in expected], atol=1e-5)
            assert met[sentence].all()


def test_a_narrow_constrained_beam_still_meets_every_phrase():
    strategy = BeamSearch(beam_size=2, alpha=0.6, n_best=2)
    for phrases in PHRASES:
        hypotheses, _, met = search(strategy, [0, 1, 2], constraints=phrases_of([phrases] * 3))
        assert met[:, 0].all(), phrases  # the best always meets them
        # A second hypothesis may be one without them, and says so.
        contains = [[all(p in h for p in phrases) for h in row] for row in hypotheses]
        assert met.tolist() == contains, phrases


def test_each_sentence_keeps_its_own_constraints_and_decodes_alike_alone_and_in_a_batch():
    strategy = BeamSearch(beam_size=4, alpha=0.6, n_best=2)
    batch = [["c"], [], ["ba", "c"]]
    together = search(strategy, [0, 1, 2], constraints=phrases_of(batch))
    for sentence, phrases in enumerate(batch):
        alone = search(strategy, [sentence], constraints=phrases_of([phrases]))
        assert together[0][sentence] == alone[0][0]
        np.testing.assert_allclose(together[1][sentence], alone[1][0], atol=1e-6)
        assert all(p in h for p in phrases for h in alone[0][0])


def test_no_constraint_gives_exactly_the_unconstrained_search():
    strategy = BeamSearch(beam_size=3, alpha=0.6, n_best=3)
    free, free_scores, _ = search(strategy, [0, 1, 2])
    empty, empty_scores, met = search(strategy, [0, 1, 2], constraints=phrases_of([[]] * 3))
    assert empty == free
    np.testing.assert_array_equal(empty_scores, free_scores)
    assert met.all()


def test_unmeetable_constraints_return_the_best_unconstrained_hypothesis_flagged():
    # Seven constraint letters cannot fit in six positions: the search returns what it would
    # without them.
    strategy = BeamSearch(beam_size=4, alpha=0.6, n_best=1)
    free, free_scores, _ = search(strategy, [0, 1])
    unfit = ["aaa", "bbbb"]
    cut, cut_scores, met = search(strategy, [0, 1], constraints=phrases_of([unfit] * 2))
    assert cut == free and not met.any()
    np.testing.assert_allclose(cut_scores, free_scores, atol=1e-6)
    # Beside a sentence whose constraints fit, each gets its own flag.
    mixed, _, met = search(strategy, [0, 1], constraints=phrases_of([unfit, ["cc"]]))
    assert mixed[0] == free[0] and "cc" in mixed[1][0]
    assert met.tolist() == [[False], [True]]


def test_phrases_that_do_not_fit_after_a_prefix_give_the_prefixed_search_flagged():
    # "ab" then 4 constraint letters: 6 tokens in 6 positions fit; "abc" then 4 do not.
    strategy = BeamSearch(beam_size=4, alpha=0.6, n_best=1)
    fitting, _, met = search(strategy, [0], prefix=prefix_of(["ab"]),
                             constraints=phrases_of([["cc", "ba"]]))
    assert met[0, 0] and fitting[0][0].startswith("ab")
    assert "cc" in fitting[0][0] and "ba" in fitting[0][0]
    free, free_scores, _ = search(strategy, [0], prefix=prefix_of(["abc"]))
    cut, cut_scores, met = search(strategy, [0], prefix=prefix_of(["abc"]),
                                  constraints=phrases_of([["cc", "ba"]]))
    assert cut == free and not met[0, 0]
    np.testing.assert_allclose(cut_scores, free_scores, atol=1e-6)


def test_constraint_state_follows_each_phrase_and_restarts_on_a_mismatch():
    phrases = phrases_of([["bc", "a"]])  # (1, 2, 2)
    progress, met = initial_state(phrases, 1)
    states = []
    for letter in "bbca":
        token = ops.convert_to_tensor([[IDS[letter]]], "int32")
        progress, met = advance(progress, met, token, phrases)
        states.append((np.asarray(progress)[0, 0].tolist(), np.asarray(met)[0, 0].tolist()))
    # "b": "bc" at 1; "b" again: restarts at 1; "c": "bc" met; "a": "a" met.
    assert states == [([1, 0], [False, False]), ([1, 0], [False, False]),
                      ([0, 0], [True, False]), ([0, 0], [True, True])]


def test_round_robin_takes_the_best_of_each_bank_first():
    scores = ops.convert_to_tensor([[-1.0, -2.0, -3.0, -0.5, -4.0, -1e9]], "float32")
    banks = ops.convert_to_tensor([[0, 0, 1, 0, 2, 2]], "int32")
    keys = np.asarray(round_robin_key(scores, banks, 2))[0]
    assert keys.tolist() == [6, 10, 1, 2, 0, 27]  # rank * (2 + 2) + (2 - bank); masked last
    order = np.argsort(keys).tolist()
    # Rank 0 of banks 2, 1, 0 (candidates 4, 2, 3), then rank 1 of bank 0 (0), then rank 2
    # (1); the masked candidate last.
    assert order == [4, 2, 3, 0, 1, 5]


PREFIXES = ["b", "ca", ""]


def test_a_wide_beam_after_a_prefix_finds_the_brute_force_n_best_that_start_with_it():
    strategy = BeamSearch(beam_size=27, alpha=0.6, n_best=2)
    hypotheses, scores, _ = search(strategy, [0, 1, 2], prefix=prefix_of(PREFIXES))
    for sentence, prefix in enumerate(PREFIXES):
        expected = brute_force(sentence, 0.6, 2, keep=lambda h: h.startswith(prefix))
        assert hypotheses[sentence] == [h for _, h in expected]
        np.testing.assert_allclose(scores[sentence], [s for s, _ in expected], atol=1e-5)


def test_greedy_after_a_prefix_follows_the_most_probable_token_by_hand():
    hypotheses, scores, _ = search(GreedySearch(), [0, 1, 2], prefix=prefix_of(PREFIXES))
    for sentence, prefix in enumerate(PREFIXES):
        tokens = [START] + [IDS[c] for c in prefix]
        while tokens[-1] != END and len(tokens) < MAX_LENGTH:
            tokens.append(int(np.argmax(TABLES[sentence, tokens[-1]])))
        assert hypotheses[sentence] == [text(tokens)]
        expected = sum(math.log(TABLES[sentence, a, b]) for a, b in zip(tokens, tokens[1:]))
        assert scores[sentence, 0] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("strategy", [GreedySearch(), BeamSearch(beam_size=3, alpha=0.6)],
                         ids=["greedy", "beam"])
def test_a_prefix_equal_to_the_output_start_changes_nothing(strategy):
    free, free_scores, _ = search(strategy, [0, 1, 2])
    for k in (1, 2):
        prefixes = [h[0][:k] for h in free]
        forced, forced_scores, _ = search(strategy, [0, 1, 2], prefix=prefix_of(prefixes))
        assert forced == free
        np.testing.assert_allclose(forced_scores, free_scores, atol=1e-6)


def test_a_prefix_and_constraints_together():
    strategy = BeamSearch(beam_size=6, alpha=0.0, n_best=1)
    hypotheses, scores, met = search(strategy, [0], prefix=prefix_of(["b"]),
                                     constraints=phrases_of([["a"]]))
    [(score, expected)] = brute_force(0, 0.0, 1, keep=lambda h: h.startswith("b") and "a" in h)
    assert hypotheses[0][0] == expected and met[0, 0]
    assert scores[0, 0] == pytest.approx(score, abs=1e-5)
