"""An OPUS-MT (Marian) checkpoint imported as a run translates as CTranslate2 translates it.

The oracle is CTranslate2's own OPUS-MT converter (`ctranslate2.converters.OpusMTConverter`),
independent of this project: it reads the same Marian files (the .npz with its model.yml, the
vocabulary .yml, decoder.yml) into its own C++ Transformer. The checkpoints are small random
models written in the published layout (tests/convert/marian_writer.py) with SentencePiece
models trained on the fixture, so no network is needed.
"""

import json

import keras
import numpy as np
import pytest
import sentencepiece as spm
import tensorflow as tf

ctranslate2 = pytest.importorskip("ctranslate2")
pytest.importorskip("safetensors")

from ctranslate2.converters import OpusMTConverter  # noqa: E402

from seq2seq import config as config_lib  # noqa: E402
from seq2seq.cli import main  # noqa: E402
from seq2seq.convert import import_marian  # noqa: E402
from seq2seq.convert.marian import MarianOptionError, check_options  # noqa: E402
from seq2seq.run_directory import load_run  # noqa: E402
from tests.convert import marian_writer as writer  # noqa: E402

SOURCES = [source for source, _ in writer.PAIRS[:20]]
TARGETS = [target for _, target in writer.PAIRS[:20]]
MAX_LENGTH = 24  # model.max_length: sources cut to 23 pieces and the end token, outputs alike
VARIANTS = {
    # OPUS-MT's usual model: one vocabulary and table for both sides, swish, post-norm.
    "shared_swish": dict(shared=True, activation="swish"),
    "separate_relu": dict(shared=False, activation="relu", gain=1.5),
    "separate_untied_swish_pre_norm": dict(shared=False, activation="swish", tied=False,
                                           pre_norm=True, gain=1.5),
}


@pytest.fixture(scope="module")
def spm_models():
    return (writer.train_spm([s for s, _ in writer.PAIRS], 120),
            writer.train_spm([t for _, t in writer.PAIRS], 120))


def checkpoint(spm_models, shared, activation, tied=True, pre_norm=False, gain=2.0):
    source_vocab, target_vocab = writer.vocabularies(*spm_models, shared)
    weights = writer.random_weights(np.random.default_rng(0), len(source_vocab),
                                    len(target_vocab), shared=shared, tied=tied,
                                    pre_norm=pre_norm, gain=gain)
    options = writer.model_options(activation=activation, shared=shared, tied=tied,
                                   pre_norm=pre_norm)
    return weights, options, source_vocab, target_vocab, *spm_models


def source_pieces(spm_models, texts, prefix=()):
    processor = spm.SentencePieceProcessor(model_proto=spm_models[0])
    return [[*prefix, *processor.encode(text, out_type=str)][: MAX_LENGTH - 1] for text in texts]


def target_pieces(spm_models, texts):
    processor = spm.SentencePieceProcessor(model_proto=spm_models[1])
    return [processor.encode(text, out_type=str)[: MAX_LENGTH - 1] for text in texts]


def ctranslate2_outputs(translator, pieces, beam_size):
    """CTranslate2's best hypothesis per source, `(tokens, score)`, under our search's rule for
    the length limit: a hypothesis cut by it (no end token) is ranked with those that ended
    only where none ended (CTranslate2 ranks it with them always)."""
    results = translator.translate_batch(
        pieces, beam_size=beam_size, num_hypotheses=beam_size, length_penalty=0.0,
        max_decoding_length=MAX_LENGTH - 1, min_decoding_length=0, return_scores=True,
        return_end_token=True)
    outputs = []
    for result in results:
        ranked = list(zip(result.hypotheses, result.scores))
        ended = [pair for pair in ranked if pair[0][-1:] == ["</s>"]]
        tokens, score = max(ended or ranked, key=lambda pair: pair[1])
        outputs.append((strip_end(tokens), score))
    return outputs


def strip_end(tokens):
    return tokens[:-1] if tokens[-1:] == ["</s>"] else tokens


def our_outputs(run, strategy, **options):
    hypotheses = run.translate(SOURCES, strategy, max_length=MAX_LENGTH, return_alignments=True,
                               **options)
    return [(strip_end(h["tokens"]), h["score"]) for h in hypotheses]


@pytest.mark.slow  # CI runs it apart (setup.cfg)
@pytest.mark.parametrize("variant", VARIANTS)
def test_an_imported_opus_mt_model_decodes_and_scores_as_ctranslate2(tmp_path, spm_models,
                                                                     variant):
    files = checkpoint(spm_models, **VARIANTS[variant])
    opus = writer.write_marian(tmp_path / "opus", *files)
    OpusMTConverter(str(opus)).convert(str(tmp_path / "ct2"))
    converted = ctranslate2.Translator(str(tmp_path / "ct2"))
    assert main(["import-marian", str(opus), str(tmp_path / "run"),
                 "--max-length", str(MAX_LENGTH)]) == 0
    run = load_run(tmp_path / "run")
    assert run.precision == "float32"

    pieces = source_pieces(spm_models, SOURCES)
    assert [h["source_tokens"][:-1] for h in run.translate(
        SOURCES, "greedy", max_length=2, return_alignments=True)] == pieces
    for strategy, beam_size in (("greedy", 1), ("beam", 4)):
        options = dict(beam_size=4, alpha=0.0) if strategy == "beam" else {}
        ours = our_outputs(run, strategy, **options)
        theirs = ctranslate2_outputs(converted, pieces, beam_size)
        assert [tokens for tokens, _ in ours] == [tokens for tokens, _ in theirs], strategy
        # Sums of up to 24 log-probabilities.
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=5e-4)
        if strategy == "greedy":  # the random model is not degenerate
            assert len({tuple(tokens) for tokens, _ in ours}) >= 12
            assert VARIANTS[variant]["shared"] or {len(t) for t, _ in ours} != {MAX_LENGTH - 1}

    # Teacher-forced log-probabilities of the references (each end token last).
    theirs = [r.log_probs for r in converted.score_batch(pieces,
                                                         target_pieces(spm_models, TARGETS))]
    ours = [token_log_probs for _, token_log_probs in run.translator.score(SOURCES, TARGETS)]
    assert [len(row) for row in ours] == [len(row) for row in theirs]
    np.testing.assert_allclose(np.concatenate(ours), np.concatenate(theirs), atol=1e-4)

    # Our own CTranslate2 export of the imported run (its logits bias included) decodes alike.
    from seq2seq.export.ctranslate2 import CTranslate2Translator, export_ctranslate2

    exported = export_ctranslate2(run.model, run.source_tokenizer, run.target_tokenizer,
                                  run.config, tmp_path / "exported")
    options = dict(strategy="beam", beam_size=4, alpha=0.6, max_length=MAX_LENGTH)
    assert CTranslate2Translator(exported).translate(SOURCES, **options) == run.translate(
        SOURCES, **options)

    if variant == "shared_swish":  # a multilingual model's target-language token first
        with pytest.raises(ValueError, match=r"data.source_prefix='>>xyz<<': '>>xyz<<' is not "
                                             r"a token of the source vocabulary"):
            load_run(tmp_path / "run", ["data.source_prefix=>>xyz<<"])
        run = load_run(tmp_path / "run", [f"data.source_prefix={writer.LANGUAGE_TOKEN}"])
        pieces = source_pieces(spm_models, SOURCES, prefix=[writer.LANGUAGE_TOKEN])
        ours = our_outputs(run, "greedy")
        assert [h[0] for h in ours] == [h[0] for h in ctranslate2_outputs(converted, pieces, 1)]


def test_the_hugging_face_layout_of_the_same_weights_imports_to_the_same_model(tmp_path,
                                                                              spm_models):
    files = checkpoint(spm_models, shared=False, activation="swish", tied=False)
    import_marian(writer.write_marian(tmp_path / "opus", *files), tmp_path / "from_marian",
                  max_length=MAX_LENGTH)
    import_marian(writer.write_huggingface(tmp_path / "hf", *files), tmp_path / "from_hf",
                  max_length=MAX_LENGTH)
    marian, hf = load_run(tmp_path / "from_marian"), load_run(tmp_path / "from_hf")
    path = lambda weight: weight.path.split("/", 1)[1]  # noqa: E731  (without the model's name)
    assert [path(w) for w in hf.model.weights] == [path(w) for w in marian.model.weights]
    for a, b in zip(hf.model.weights, marian.model.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    assert hf.target_tokenizer.vocabulary == marian.target_tokenizer.vocabulary
    assert hf.source_tokenizer.vocabulary == marian.source_tokenizer.vocabulary
    hf_config, marian_config = hf.config.to_dict(), marian.config.to_dict()
    assert hf_config["model"] == marian_config["model"]
    assert hf.translate(SOURCES[:5], "greedy") == marian.translate(SOURCES[:5], "greedy")


@pytest.mark.parametrize("name, value, message", [
    ("transformer-depth-scaling", True, "transformer-depth-scaling=True is not supported"),
    ("transformer-postprocess", "da", "transformer-preprocess/-postprocess/-postprocess-top="
                                      "('', 'da', '') are not supported"),
    ("transformer-ffn-activation", "gelu", "transformer-ffn-activation='gelu' is not supported; "
                                           "expected 'relu' or 'swish'"),
    ("transformer-decoder-autoreg", "average-attention", "transformer-decoder-autoreg="),
    ("transformer-tied-layers", [1, 1], "transformer-tied-layers=[1, 1]"),
    ("transformer-postprocess-emb", "dn", "transformer-postprocess-emb='dn'"),
])
def test_unsupported_marian_options_are_refused_by_name(name, value, message):
    with pytest.raises(MarianOptionError, match=__import__("re").escape(message)):
        check_options(writer.model_options(**{name: value}), "model.npz")


def test_import_refuses_a_model_it_cannot_reproduce_before_writing(tmp_path, spm_models, capsys):
    weights, options, *rest = checkpoint(spm_models, shared=True, activation="relu")
    opus = writer.write_marian(tmp_path / "opus", weights,
                               {**options, "transformer-depth-scaling": True}, *rest)
    assert main(["import-marian", str(opus), str(tmp_path / "run")]) == 2
    assert "Marian option transformer-depth-scaling=True is not supported" in \
        capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert main(["import-marian", str(tmp_path), str(tmp_path / "run")]) == 2
    assert "holds no Marian checkpoint; expected an OPUS-MT release" in capsys.readouterr().err


def test_an_imported_run_serves_and_fine_tunes_with_its_vocabulary(tmp_path, spm_models):
    from tests.export.test_saved_model import serve

    files = checkpoint(spm_models, shared=True, activation="swish")
    assert main(["import-marian", str(writer.write_marian(tmp_path / "opus", *files)),
                 str(tmp_path / "opus_run"), "--max-length", str(MAX_LENGTH),
                 "--source-prefix", writer.LANGUAGE_TOKEN]) == 0
    run = load_run(tmp_path / "opus_run", ["decoding.beam_size=2", "export.controls=false"])
    assert run.source_tokenizer.vocabulary[run.translator.encode_sources(
        SOURCES[:1]).numpy()[0, 0]] == writer.LANGUAGE_TOKEN
    assert main(["export", str(tmp_path / "opus_run"), str(tmp_path / "served"),
                 "--set", "decoding.beam_size=2", "--set", "export.controls=false"]) == 0
    served = serve(tmp_path / "served" / "1", SOURCES[:4])
    assert [row[0] for row in served["translations"]] == run.decode(SOURCES[:4])

    # A fine-tune on the user's pairs: the recipe, the imported run as its base.
    sentence = SOURCES[3]
    before = run.source_tokenizer.tokenize([sentence]).to_list()
    train_file = tmp_path / "mine.tsv"
    train_file.write_text("".join(f"{s}\t{t}\n" for s, t in writer.PAIRS[:64]), "utf-8")
    held_out = tmp_path / "held_out.tsv"  # the validations and the test: a few pairs, quick
    held_out.write_text("".join(f"{s}\t{t}\n" for s, t in writer.PAIRS[64:68]), "utf-8")
    command = ["train", "finetune_opus_mt", "--run-dir", str(tmp_path / "tuned"),
               "--set", f"training.init_checkpoint={tmp_path / 'opus_run'}",
               "--set", f"data.train_file={train_file}", "--set", f"data.valid_file={held_out}",
               "--set", f"data.test_file={held_out}", "--set", "training.eval_every=1",
               "--set", "training.valid_sentences=4", "--set", "data.batch_size=8",
               "--set", "export.enabled=false", "--set", "model.dropout=0.0"]
    for steps in (1, 2):  # a fine-tune, then its resumption (from its own config.yaml)
        keras.backend.clear_session()
        assert main([*command, "--set", f"training.steps={steps}"]) == 0
    tuned = load_run(tmp_path / "tuned")
    assert tuned.config.data.source_prefix == writer.LANGUAGE_TOKEN
    assert tuned.config.model == config_lib.apply_overrides(
        run.config, ["model.dropout=0.0"]).model  # the base's architecture
    assert tuned.source_tokenizer.tokenize([sentence]).to_list() == before
    assert tuned.source_tokenizer.vocabulary == run.source_tokenizer.vocabulary
    moved = [not np.array_equal(np.asarray(a), np.asarray(b))
             for a, b in zip(tuned.model.weights, run.model.weights)]
    assert any(moved) and json.loads(
        (tmp_path / "tuned" / "validation.jsonl").read_text().splitlines()[-1])["step"] == 2
    assert tf.reduce_all(tuned.model.target_embedding.logits_bias[:2] < -99)
