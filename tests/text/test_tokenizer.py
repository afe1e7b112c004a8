"""In-graph tokenizers on real sentences."""

import pathlib
import unicodedata

import numpy as np
import pytest
import tensorflow as tf

from seq2seq.data.readers import read_tsv
from seq2seq.text.tokenizer import (
    END_ID,
    PAD_ID,
    START_ID,
    UNK_ID,
    Tokenizer,
    characters_kept_from_normalization,
    train_tokenizer,
    train_tokenizers,
)

FIXTURE = pathlib.Path(__file__).parents[1] / "fixtures" / "libreoffice-help.en-de.tsv"
PAIRS = read_tsv(FIXTURE)
TRAIN, HELD_OUT = PAIRS[:300], PAIRS[300:]
TEXTS = [s for s, _ in TRAIN] + [t for _, t in TRAIN]


@pytest.fixture(scope="module")
def sentencepiece():
    return train_tokenizer(TEXTS, vocabulary_size=600)


def sentencepiece_normalized(text, kept=("…",)):
    """NFKC and whitespace folding, except for the characters the vocabulary keeps."""
    normalized = "".join(c if c in kept else unicodedata.normalize("NFKC", c) for c in text)
    return " ".join(normalized.split())


def bert_normalized(text):
    """WordPiece's pre-tokenization written out: whitespace split, punctuation split off."""
    def is_punctuation(char):
        code = ord(char)
        return (
            33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126
            or unicodedata.category(char).startswith("P")
        )
    spaced = "".join(f" {c} " if is_punctuation(c) else c for c in text)
    return " ".join(spaced.split())


def test_special_ids_are_fixed(sentencepiece):
    pieces = [p.decode() for p in sentencepiece.id_to_token([PAD_ID, START_ID, END_ID, UNK_ID]).numpy()]
    assert pieces == ["<pad>", "<s>", "</s>", "<unk>"]
    assert sentencepiece.vocabulary_size == 600


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_sentencepiece_round_trip_on_held_out_sentences(model_type):
    tokenizer = train_tokenizer(TEXTS, vocabulary_size=600, model_type=model_type)
    sentences = [s for pair in HELD_OUT for s in pair]
    ids = tokenizer.tokenize(sentences)
    assert ids.dtype == tf.int32 and int(tf.reduce_min(ids.flat_values)) > UNK_ID - 1
    decoded = [s.decode("utf-8") for s in tokenizer.detokenize(ids).numpy()]
    expected = [sentencepiece_normalized(s) for s in sentences]
    # Characters never seen in training map to unknown; every other sentence comes back.
    seen = set("".join(TEXTS))
    covered = [i for i, s in enumerate(sentences) if set(s) <= seen]
    assert len(covered) > 0.9 * len(sentences)
    assert [decoded[i] for i in covered] == [expected[i] for i in covered]


def test_wordpiece_round_trip_on_held_out_sentences():
    tokenizer = train_tokenizer(TEXTS, kind="wordpiece", vocabulary_size=800)
    assert tokenizer.id_to_token([0, 1, 2, 3]).numpy().tolist() == [
        b"[PAD]", b"[START]", b"[END]", b"[UNK]"
    ]
    sentences = [s for s, _ in HELD_OUT[:40]]
    ids = tokenizer.tokenize(sentences)
    decoded = [s.decode("utf-8") for s in tokenizer.detokenize(ids).numpy()]
    seen = set("".join(TEXTS))
    covered = [i for i, s in enumerate(sentences) if set(s) <= seen]
    assert [decoded[i] for i in covered] == [bert_normalized(sentences[i]) for i in covered]


def test_frequent_characters_that_nfkc_rewrites_are_kept(sentencepiece):
    # In the fixture's German "…" is one character in ~9,000 (1 in 10,000 is enough to be
    # kept); the full-width letters below, rarer, stay normalized.
    assert characters_kept_from_normalization(TEXTS) == ["…"]
    assert characters_kept_from_normalization(["ａｂ…" + "x" * 9997]) == ["…", "ａ", "ｂ"]
    assert characters_kept_from_normalization(["ａ\u00a0…" + "x" * 99997]) == []
    sentences = ["Wählen Sie Extras – Makros – Dialoge verwalten… und klicken Sie auf Neu….",
                 "Tools...  ｆｉｌｅ"]
    decoded = [s.decode() for s in sentencepiece.detokenize(sentencepiece.tokenize(sentences))
               .numpy()]
    assert decoded == [sentences[0], "Tools... file"]


def test_detokenize_stops_at_end_and_drops_start_and_padding(sentencepiece):
    ids = sentencepiece.tokenize(["Choose Tools - Options."]).to_list()[0]
    decoder_output = np.array([[START_ID, *ids, END_ID, 57, 58, PAD_ID, PAD_ID]])
    assert sentencepiece.detokenize(decoder_output).numpy().tolist() == [b"Choose Tools - Options."]


def test_training_is_deterministic():
    a = train_tokenizer(TEXTS, vocabulary_size=500, model_type="bpe")
    b = train_tokenizer(TEXTS, vocabulary_size=500, model_type="bpe")
    assert a.model == b.model


def test_joint_and_separate_vocabularies():
    source, target = train_tokenizers(TRAIN, joint=True, vocabulary_size=500)
    assert source is target
    source, target = train_tokenizers(TRAIN, joint=False, vocabulary_size=400)
    assert source is not target
    english = source.id_to_token(tf.range(4, 400)).numpy().tolist()
    german = target.id_to_token(tf.range(4, 400)).numpy().tolist()
    assert english != german


def test_tokenizer_runs_inside_a_graph():
    sentencepiece = train_tokenizer(TEXTS, vocabulary_size=600)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def round_trip(texts):
        return sentencepiece.detokenize(sentencepiece.tokenize(texts))

    assert round_trip(tf.constant(["Insert - Field"])).numpy().tolist() == [b"Insert - Field"]


def test_a_saved_model_keeps_a_source_and_a_target_sentencepiece_model_apart(tmp_path):
    # A loaded SavedModel made one resource of two SentencePiece models created under the same
    # op name: the target detokenized with the source's model (separate vocabularies).
    source, target = train_tokenizers(TRAIN, joint=False, vocabulary_size=300)
    module = tf.Module()
    module.source, module.target = source, target
    module.encode = tf.function(lambda texts: source.tokenize(texts).to_tensor(),
                                input_signature=[tf.TensorSpec([None], tf.string)])
    module.decode = tf.function(lambda ids: target.detokenize(ids),
                                input_signature=[tf.TensorSpec([None, None], tf.int32)])
    tf.saved_model.save(module, str(tmp_path / "saved"))
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    english, german = HELD_OUT[0]
    german_ids = target.tokenize([german]).to_tensor()
    assert loaded.decode(german_ids).numpy().tolist() == [german.encode("utf-8")]
    assert loaded.encode([english]).numpy().tolist() == source.tokenize([english]).to_list()


def test_a_vocabulary_of_its_own_maps_pieces_by_their_strings(tmp_path):
    import sentencepiece as spm

    model = train_tokenizer(TEXTS, vocabulary_size=300).model
    processor = spm.SentencePieceProcessor(model_proto=model)
    pieces = [processor.id_to_piece(i) for i in range(4, 300)]
    # Another order, a token SentencePiece never writes, and a third of the pieces missing.
    vocabulary = ["<pad>", "<s>", "</s>", "<unk>", ">>deu<<", *pieces[::-1][100:]]
    tokenizer = Tokenizer("sentencepiece", model, vocabulary, source_prefix=">>deu<<")
    tokenizer.save(tmp_path)
    tokenizer = Tokenizer.load(tmp_path).with_source_prefix(">>deu<<")
    assert tokenizer.vocabulary_size == len(vocabulary)
    text = HELD_OUT[0][0]
    expected = [vocabulary.index(p) if p in vocabulary else UNK_ID
                for p in processor.encode(text, out_type=str)]
    assert tokenizer.tokenize([text]).to_list() == [expected]
    assert tokenizer.encode_sources([text], max_length=6).to_list() == [
        [4, *expected[:4], END_ID]]
    known = [i for i in expected if i != UNK_ID]
    assert tokenizer.detokenize([known]).numpy()[0].decode() == processor.decode(
        [processor.piece_to_id(vocabulary[i]) for i in known])
    with pytest.raises(ValueError, match="data.source_prefix='>>fra<<': '>>fra<<' is not a "
                                         "token of the source vocabulary"):
        tokenizer.with_source_prefix(">>fra<<")


@pytest.mark.parametrize("kind", ["sentencepiece", "wordpiece"])
def test_save_and_load(tmp_path, kind):
    tokenizer = train_tokenizer(TEXTS[:200], kind=kind, vocabulary_size=400)
    tokenizer.save(tmp_path)
    restored = Tokenizer.load(tmp_path)
    sentences = [s for s, _ in HELD_OUT[:10]]
    assert restored.tokenize(sentences).to_list() == tokenizer.tokenize(sentences).to_list()


def test_bad_names_and_inputs():
    with pytest.raises(ValueError, match="'bytes'; expected one of sentencepiece, wordpiece"):
        train_tokenizer(TEXTS, kind="bytes")
    with pytest.raises(ValueError, match="'char'; expected one of unigram, bpe"):
        train_tokenizer(TEXTS, model_type="char")
    with pytest.raises(ValueError, match="no non-empty text"):
        train_tokenizer(["", "  "])
    with pytest.raises(FileNotFoundError, match="tokenizer.json is missing"):
        Tokenizer.load("/nonexistent")
