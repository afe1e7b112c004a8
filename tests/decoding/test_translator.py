"""translate(): strings in, strings out, equal to the search run by hand."""

import keras
import numpy as np
import pytest

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


def test_a_decoding_config_chooses_its_strategy_and_only_its_settings():
    from seq2seq.config import DecodingConfig
    from seq2seq.decoding import strategy_options

    beam = DecodingConfig(strategy="beam", beam_size=3, alpha=1.2, n_best=2, min_length=1,
                          temperature=0.5)
    assert strategy_options(beam, alpha=0.0) == ("beam", dict(
        min_length=1, beam_size=3, alpha=0.0, n_best=2, coverage_penalty=0.0))
    sampling = DecodingConfig(strategy="sampling", top_k=5, top_p=0.9, temperature=0.7, seed=3)
    assert strategy_options(sampling) == ("sampling", dict(
        min_length=0, temperature=0.7, top_k=5, top_p=0.9, seed=3))
    assert strategy_options(DecodingConfig(strategy="greedy")) == ("greedy", {"min_length": 0})


def test_sampling_from_a_config_with_top_k_1_is_greedy(translator):
    from seq2seq.config import DecodingConfig
    from seq2seq.decoding import strategy_options

    name, options = strategy_options(DecodingConfig(strategy="sampling", top_k=1, seed=0))
    sampled = translator.translate(SENTENCES, strategy=name, **options)
    assert sampled == translator.translate(SENTENCES, strategy="greedy")
