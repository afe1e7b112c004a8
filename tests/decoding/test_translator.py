"""translate(): strings in, strings out, equal to the search run by hand."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq.data.readers import read_tsv
from seq2seq.decoding import BeamSearch, GreedySearch, generate
from seq2seq.decoding.translator import Translator
from seq2seq.models import Transformer
from seq2seq.text.tokenizer import END_ID, train_tokenizer

PAIRS = read_tsv("tests/fixtures/libreoffice-help.en-de.tsv")
SENTENCES = ["Choose Tools - Options.", "Insert a new sheet.", "The Template Library"]


@pytest.fixture(scope="module")
def translator():
    tokenizer = train_tokenizer([s for p in PAIRS for s in p], vocabulary_size=500)
    keras.utils.set_random_seed(11)
    model = Transformer.from_size(
        "tiny", source_vocabulary_size=500, target_vocabulary_size=500, max_length=16,
        dropout=0.0,
    )
    return Translator(model, tokenizer, tokenizer)


def by_hand(translator, texts, search):
    ids = [translator.source_tokenizer.tokenize([t]).to_list()[0][:15] + [END_ID] for t in texts]
    width = max(len(i) for i in ids)
    source = np.array([i + [0] * (width - len(i)) for i in ids], dtype="int32")
    result = generate(translator.model, source, search, max_length=16)
    tokens = np.asarray(result.tokens)
    return [
        [s.decode() for s in translator.target_tokenizer.detokenize(row).numpy()] for row in tokens
    ], np.asarray(result.scores)


def test_greedy_translation_equals_the_search_by_hand(translator):
    expected, _ = by_hand(translator, SENTENCES, GreedySearch())
    assert translator.translate(SENTENCES, strategy="greedy") == [row[0] for row in expected]


@pytest.mark.parametrize("coverage_penalty", [0.0, 0.4])
def test_beam_n_best_with_scores(translator, coverage_penalty):
    search = BeamSearch(beam_size=3, alpha=0.6, n_best=2, coverage_penalty=coverage_penalty)
    expected, scores = by_hand(translator, SENTENCES, search)
    got = translator.translate(SENTENCES, beam_size=3, n_best=2, return_scores=True,
                               coverage_penalty=coverage_penalty)
    assert [[text for text, _ in row] for row in got] == expected
    np.testing.assert_allclose([[s for _, s in row] for row in got], scores, atol=1e-5)
    assert all(row[0][1] >= row[1][1] for row in got)


def test_bad_input_never_disturbs_the_good_sentences(translator):
    huge = "Sheet " * 200_000  # 1.2 MB: truncated to max_source_length tokens
    mixed = ["", "   ", SENTENCES[0], huge, b"caf\xe9".decode("latin-1"), SENTENCES[1]]
    alone = translator.translate(SENTENCES[:2], batch_size=1)
    together = translator.translate(mixed)
    assert len(together) == len(mixed)
    assert [together[2], together[5]] == alone
    assert translator.encode_sources([huge]).shape == (1, 16)


def test_length_sorted_batches_come_back_in_input_order(translator):
    texts = [source for source, _ in PAIRS[:9]]
    assert [len(t) for t in texts] != sorted(len(t) for t in texts)  # not already in order
    one_by_one = [translator.translate([text], batch_size=1)[0] for text in texts]
    assert translator.translate(texts, batch_size=4) == one_by_one


def test_split_sentences_translates_a_paragraph_one_sentence_at_a_time(translator):
    paragraphs = [" ".join(SENTENCES[:2]), SENTENCES[2], ""]
    by_sentence = Translator(translator.model, translator.source_tokenizer,
                             translator.target_tokenizer, split_sentences=True)
    alone = translator.translate(SENTENCES + [""], beam_size=3, n_best=2, return_scores=True)
    got = by_sentence.translate(paragraphs, beam_size=3, n_best=2, return_scores=True)
    for k in range(2):  # the k-th best joins the k-th best of each sentence, scores summed
        first = f"{alone[0][k][0]} {alone[1][k][0]}"
        assert [row[k][0] for row in got] == [first, alone[2][k][0], alone[3][k][0]]
        np.testing.assert_allclose(
            [row[k][1] for row in got],
            [alone[0][k][1] + alone[1][k][1], alone[2][k][1], alone[3][k][1]], atol=1e-5)


def test_a_decoding_config_builds_its_strategy_with_only_its_settings():
    from seq2seq.config import DecodingConfig
    from seq2seq.decoding import from_config

    beam = DecodingConfig(strategy="beam", beam_size=3, alpha=1.2, n_best=2, min_length=1,
                          temperature=0.5)
    assert from_config(beam, alpha=0.0, top_k=9).get_config() == dict(
        strategy="beam", beam_size=3, alpha=0.0, n_best=2, min_length=1, max_length=None,
        early_stopping=False, coverage_penalty=0.0)
    sampling = DecodingConfig(strategy="sampling", top_k=5, top_p=0.9, temperature=0.7, seed=3,
                              max_length=12)
    assert from_config(sampling, n_best=4).get_config() == dict(
        strategy="sampling", min_length=0, max_length=12, temperature=0.7, top_k=5, top_p=0.9,
        seed=3)
    greedy = from_config(DecodingConfig(strategy="greedy"))
    assert greedy.get_config() == {"strategy": "greedy", "min_length": 0, "max_length": None}
    assert greedy.n_best == 1


def test_sampling_from_a_config_with_top_k_1_is_greedy(translator):
    from seq2seq.config import DecodingConfig
    from seq2seq.decoding import from_config

    sampled = translator.translate(SENTENCES, from_config(DecodingConfig(strategy="sampling",
                                                                         top_k=1, seed=0)))
    assert sampled == translator.translate(SENTENCES, strategy="greedy")


def test_each_translation_continues_its_prefix(translator):
    prefixes = ["Wählen Sie", "", "Die Vorlage"]
    got = translator.translate(SENTENCES, beam_size=3, prefixes=prefixes)
    free = translator.translate(SENTENCES, beam_size=3)
    assert got[0].startswith("Wählen Sie") and got[2].startswith("Die Vorlage")
    assert got[1] == free[1]  # no prefix: the free search
    greedy = translator.translate(SENTENCES, strategy="greedy")
    # A prefix equal to the greedy output's first tokens changes nothing.
    ids = translator.target_tokenizer.tokenize(greedy).to_list()
    starts = [s.decode() for s in translator.target_tokenizer.detokenize(
        tf.ragged.constant([row[:2] for row in ids])).numpy()]
    assert translator.translate(SENTENCES, strategy="greedy", prefixes=starts) == greedy


def test_every_translation_contains_its_terms(translator):
    # 50 fixture sentences, each with one or two words of its reference as constraints (words
    # of at most 6 tokens: 12 tokens fit in the 15 positions of the output).
    def fits(word):
        return len(translator.target_tokenizer.tokenize([word]).to_list()[0]) <= 6

    words = [[w for w in target.split() if fits(w)] for _, target in PAIRS]
    chosen = [i for i, w in enumerate(words) if len(w) >= 2][:50]
    constraints = [words[i][:1] if n % 2 else [words[i][0], words[i][-1]]
                   for n, i in enumerate(chosen)]
    got = translator.translate([PAIRS[i][0] for i in chosen], beam_size=3,
                               constraints=constraints, return_alignments=True)
    assert len(got) == 50 and all(h["constraints_met"] for h in got)
    assert all(term in h["translation"] for h, terms in zip(got, constraints) for term in terms)
    # Phrases that cannot fit: the unconstrained translation, flagged.
    too_long = [[" ".join(words[chosen[0]] * 8)]]
    [flagged] = translator.translate([PAIRS[chosen[0]][0]], beam_size=3, constraints=too_long,
                                     return_alignments=True)
    assert not flagged["constraints_met"]
    assert flagged["translation"] == translator.translate([PAIRS[chosen[0]][0]], beam_size=3)[0]
    # No constraints: exactly the unconstrained search.
    sources = [s for s, _ in PAIRS[:8]]
    assert translator.translate(sources, beam_size=3, constraints=[[]] * 8) == \
        translator.translate(sources, beam_size=3)


def test_alignments_and_confidence_of_each_hypothesis(translator):
    got = translator.translate(SENTENCES, beam_size=3, alpha=0.0, n_best=2,
                               return_alignments=True)
    pieces = translator.target_tokenizer.id_to_token(tf.range(500)).numpy()
    piece_ids = {piece.decode(): i for i, piece in enumerate(pieces)}
    for source, row in zip(SENTENCES, got):
        source_ids = translator.encode_sources([source]).numpy()
        assert row[0]["source_tokens"] == [
            t.decode() for t in translator.source_tokenizer.id_to_token(source_ids[0]).numpy()]
        for hypothesis in row:
            ids = [piece_ids[t] for t in hypothesis["tokens"]]
            # The pieces are the output (the end piece last where it ended, as all of the
            # finished n-best do) and detokenize to its text.
            assert END_ID not in ids[:-1] and (ids[-1] == END_ID or len(ids) == 15)
            assert translator.target_tokenizer.detokenize(
                tf.constant([ids])).numpy()[0].decode() == hypothesis["translation"]
            # Alignments: the argmax of the full pass's cross-attention (last layer, mean of
            # heads) of the step that chose each token.
            tokens = np.array([[1] + ids], "int32")
            full = np.asarray(translator.model.cross_attention(source_ids, tokens)).mean(axis=1)
            assert hypothesis["alignments"] == full[0, : len(ids)].argmax(axis=-1).tolist()
            # Confidence: at alpha 0 the beam's score is the sum of its token log-probs.
            log_probs = hypothesis["token_log_probs"]
            assert sum(log_probs) == pytest.approx(hypothesis["score"], abs=1e-4)
            assert hypothesis["mean_log_prob"] == pytest.approx(np.mean(log_probs), abs=1e-6)
            assert hypothesis["min_prob"] == pytest.approx(np.exp(min(log_probs)), rel=1e-5)
