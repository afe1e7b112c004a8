"""Scoring given translations: teacher-forced log-probabilities under the model."""

import keras
import numpy as np
import pytest

from seq2seq.data.readers import read_tsv
from seq2seq.decoding.translator import Translator
from seq2seq.models import Transformer
from seq2seq.text.tokenizer import END_ID, START_ID, train_tokenizer

PAIRS = read_tsv("tests/fixtures/libreoffice-help.en-de.tsv")[:24]


@pytest.fixture(scope="module")
def translator():
    tokenizer = train_tokenizer([s for p in read_tsv("tests/fixtures/libreoffice-help.en-de.tsv")
                                 for s in p], vocabulary_size=300)
    keras.utils.set_random_seed(3)
    model = Transformer.from_size("tiny", source_vocabulary_size=300,
                                  target_vocabulary_size=300, max_length=40, dropout=0.0)
    return Translator(model, tokenizer, tokenizer)


def hand_log_probs(translator, source, target):
    """One pair alone (no batch, no padding): the model's forward pass, then a log-softmax
    written out in numpy, at each target token and the end id."""
    source_ids = translator.encode_sources([source]).numpy()
    ids = translator.target_tokenizer.tokenize([target]).to_list()[0]
    ids = ids[: translator.model.max_length - 1]
    logits = np.asarray(translator.model((source_ids, np.array([[START_ID, *ids]])))[0],
                        np.float64)
    log_probs = logits - logits.max(-1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
    return [log_probs[t, token] for t, token in enumerate([*ids, END_ID])]


def test_scores_equal_the_forward_pass_and_a_hand_log_softmax(translator):
    sources, targets = [s for s, _ in PAIRS], [t for _, t in PAIRS]
    scored = translator.score(sources, targets, batch_size=7)  # batches pad differently
    assert len(scored) == len(PAIRS)
    for (total, tokens), source, target in zip(scored, sources, targets):
        expected = hand_log_probs(translator, source, target)
        np.testing.assert_allclose(tokens, expected, atol=1e-5)
        assert total == pytest.approx(sum(tokens), abs=1e-4)
    # Long targets are cut to max_length - 1 tokens, then the end id.
    assert max(len(tokens) for _, tokens in scored) == translator.model.max_length


def test_the_score_of_the_beam_output_is_the_score_the_beam_reported(translator):
    import tensorflow as tf

    from seq2seq.decoding import BeamSearch, generate

    source_ids = translator.encode_sources([s for s, _ in PAIRS])
    result = generate(translator.model, source_ids, BeamSearch(beam_size=3, alpha=0.0),
                      max_length=12)
    searched = [[t for t in row[1:] if t != 0] for row in result.tokens.numpy()[:, 0].tolist()]
    words = [ids[:-1] if ids[-1:] == [END_ID] else ids for ids in searched]
    totals, tokens, lengths = translator.score_ids(source_ids, tf.ragged.constant(words))
    for ids, total, row, length, beam_score in zip(searched, totals.numpy(), tokens.numpy(),
                                                   lengths.numpy(), result.scores.numpy()[:, 0]):
        # A hypothesis cut by the length limit has no end id: the search scored it without.
        if ids[-1:] != [END_ID]:
            total -= row[length - 1]
        assert total == pytest.approx(beam_score, abs=1e-4)


def test_one_target_per_source(translator):
    with pytest.raises(ValueError, match="2 sources but 1 targets; expected one target per"):
        translator.score(["a", "b"], ["c"])
