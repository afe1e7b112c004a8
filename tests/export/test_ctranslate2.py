"""The CTranslate2 export decodes as our own search does, token for token.

CTranslate2 is an independent implementation of the whole Transformer and its searches (C++,
its own kernels); small models trained a few hundred steps on the fixture are converted and
both runtimes translate the same sources.
"""

import json

import numpy as np
import pytest

ctranslate2 = pytest.importorskip("ctranslate2")

from seq2seq import config as config_lib  # noqa: E402
from seq2seq.cli import main  # noqa: E402
from seq2seq.export.ctranslate2 import CTranslate2Translator, export_ctranslate2  # noqa: E402
from seq2seq.run_directory import load_run  # noqa: E402
from seq2seq.training import trainer  # noqa: E402
from tests.training.conftest import FIXTURE_TSV, shrink  # noqa: E402

SOURCES = [line.split("\t")[0] for line in FIXTURE_TSV.read_text("utf-8").splitlines()[:40]]
VARIANTS = {
    "pre_norm_shared_tied_sinusoidal": {},
    "post_norm_untied_learned_gelu": {"model": {
        "norm_first": False, "share_embeddings": False, "tie_output": False,
        "position_embedding": "learned", "activation": "gelu"}},
    "wordpiece": {"data": {"tokenizer": "wordpiece"}},
}


def trained_run(tmp_path, variant, steps=300):
    """A tiny model trained `steps` steps on the fixture (float32, no dropout), opened for
    inference, and its CTranslate2 conversion. (Much fewer steps leave a model whose
    hypotheses tie, where two correct searches may break ties differently.)"""
    settings = VARIANTS[variant]
    config = shrink("translation", tmp_path, model={"dropout": 0.0, **settings.get("model", {})},
                    data=settings.get("data", {}), export={"enabled": False},
                    training={"steps": steps, "eval_every": steps, "warmup_steps": 50})
    trainer.train(config_lib.load(config), tmp_path / "run", print_fn=lambda *_: None)
    run = load_run(tmp_path / "run")
    out = export_ctranslate2(run.model, run.source_tokenizer, run.target_tokenizer, run.config,
                             tmp_path / "ct2")
    return run, CTranslate2Translator(out)


def teacher_forced_log_probs(run, sources, targets, max_tokens):
    """Our model's log-probability of each target token (its end token last), targets cut to
    `max_tokens` tokens."""
    import tensorflow as tf

    source_ids = run.translator.encode_sources(tf.constant(sources))
    target = run.target_tokenizer.tokenize(tf.constant(targets))
    rows = []
    for i, ids in enumerate(target[:, :max_tokens].to_list()):
        target_in = np.array([[1, *ids]], np.int32)
        logits = run.model((source_ids[i : i + 1], target_in))[0]
        log_probs = np.asarray(tf.nn.log_softmax(logits))
        rows.append([float(log_probs[t, token]) for t, token in enumerate([*ids, 2])])
    return rows


def assert_length_limits_mean_the_same(run, converted):
    for options in (dict(strategy="beam", beam_size=3, alpha=0.0, max_length=5),
                    dict(strategy="beam", beam_size=3, alpha=0.6, max_length=3),
                    dict(strategy="greedy", max_length=4)):
        ours = run.translator.translate(SOURCES, return_scores=True, **options)
        theirs = converted.translate(SOURCES, return_scores=True, **options)
        assert [t for t, _ in theirs] == [t for t, _ in ours], options
        np.testing.assert_allclose([s for _, s in theirs], [s for _, s in ours], atol=1e-4)
    # With min_length, CTranslate2 renormalises each step's probabilities without the end
    # token (ours leaves the others as they are): greedy search chooses the same tokens, its
    # scores differ, and a beam may rank differently.
    options = dict(strategy="greedy", min_length=6)
    ours = run.translator.translate(SOURCES, **options)
    assert converted.translate(SOURCES, **options) == ours
    assert min(len(run.target_tokenizer.tokenize([text]).to_list()[0]) for text in ours) >= 6
    # Sampling among the single most probable token is greedy search, in both.
    sampled = converted.translate(SOURCES, strategy="sampling", top_k=1, temperature=0.7, seed=3)
    assert sampled == run.translator.translate(SOURCES, strategy="greedy")
    with pytest.raises(ValueError, match="CTranslate2 has no GNMT coverage penalty"):
        converted.translate(SOURCES[:1], coverage_penalty=0.2)


@pytest.mark.slow  # CI runs it apart (setup.cfg)
@pytest.mark.parametrize("variant", VARIANTS)
def test_both_runtimes_translate_token_for_token_alike(tmp_path, variant):
    run, converted = trained_run(tmp_path, variant)
    searches = {
        "greedy": dict(strategy="greedy"),
        "beam 4, alpha 0": dict(strategy="beam", beam_size=4, alpha=0.0),
        # GNMT: CTranslate2's raw-score hypotheses ranked by ((5 + L) / 6) ** alpha.
        "beam 4, alpha 0.6": dict(strategy="beam", beam_size=4, alpha=0.6),
        "beam 4, alpha 1.2": dict(strategy="beam", beam_size=4, alpha=1.2),
        "beam 4, 3-best, alpha 0.6": dict(strategy="beam", beam_size=4, alpha=0.6, n_best=3),
    }
    for name, options in searches.items():
        ours = run.translator.translate(SOURCES, return_scores=True, **options)
        theirs = converted.translate(SOURCES, return_scores=True, **options)
        if options.get("n_best", 1) > 1:
            ours, theirs = sum(ours, []), sum(theirs, [])
        assert [text for text, _ in theirs] == [text for text, _ in ours], (variant, name)
        np.testing.assert_allclose([s for _, s in theirs], [s for _, s in ours], atol=1e-4,
                                   err_msg=f"{variant}, {name}")
    assert len(set(text for text, _ in ours)) > 10  # the model is not degenerate

    # Teacher-forced log-probabilities of the references, against our model's softmax.
    targets = [line.split("\t")[1] for line in FIXTURE_TSV.read_text("utf-8").splitlines()[:8]]
    expected = teacher_forced_log_probs(run, SOURCES[:8], targets,
                                       converted.config.model.max_length - 1)
    # Translator.score, ours batched and padded, against the same.
    ours = run.translator.score(SOURCES[:8], targets)
    np.testing.assert_allclose(np.concatenate([t for _, t in ours]), np.concatenate(expected),
                               atol=1e-4)
    scored = converted.score(SOURCES[:8], targets)
    assert [len(row) for row in scored] == [len(row) for row in expected]
    np.testing.assert_allclose(np.concatenate(scored), np.concatenate(expected), atol=1e-4)

    if variant == "pre_norm_shared_tied_sinusoidal":
        assert_length_limits_mean_the_same(run, converted)
        assert_terms_hold_on_a_trained_model(run)


def assert_terms_hold_on_a_trained_model(run):
    """50 fixture sentences, each with one or two words of its reference as constraints: every
    output contains them, and BLEU against the references does not fall."""
    from seq2seq.evaluation.metrics import bleu

    pairs = [line.split("\t") for line in FIXTURE_TSV.read_text("utf-8").splitlines()]
    fits = lambda word: len(run.target_tokenizer.tokenize([word]).to_list()[0]) <= 6  # noqa: E731
    chosen = [(s, t, [w for w in t.split() if fits(w)]) for s, t in pairs]
    chosen = [(s, t, w) for s, t, w in chosen if len(w) >= 2][:50]
    terms = [w[:1] if i % 2 else [w[0], w[-1]] for i, (_, _, w) in enumerate(chosen)]
    sources, references = [s for s, _, _ in chosen], [t for _, t, _ in chosen]
    free = run.translate(sources, "beam", beam_size=4, alpha=0.6)
    forced = run.translate(sources, "beam", beam_size=4, alpha=0.6, constraints=terms,
                           return_alignments=True)
    assert len(forced) == 50 and all(h["constraints_met"] for h in forced)
    assert all(t in h["translation"] for h, ts in zip(forced, terms) for t in ts)
    assert float(bleu([h["translation"] for h in forced], references)) >= \
        float(bleu(free, references))


def test_export_and_translate_from_the_command_line(tmp_path, capsys):
    # A run that exports both formats at the end of training; then `seq2seq export RUN OUT
    # --format ctranslate2`, int8 too; `seq2seq translate` takes the CTranslate2 directory and
    # writes what it writes from the run (the recipe's decoding: beam 2, alpha 1.2, sentences).
    config = shrink("translation", tmp_path, model={"dropout": 0.0},
                    training={"steps": 40, "eval_every": 40}, export={"format": "both"})
    assert main(["train", str(config), "--run-dir", str(tmp_path / "run")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["export_ctranslate2"] == str(tmp_path / "run" / "export" / "ctranslate2")
    assert (tmp_path / "run" / "export" / "1" / "saved_model.pb").exists()
    assert (tmp_path / "run" / "export" / "ctranslate2" / "model.bin").exists()

    assert main(["export", str(tmp_path / "run"), str(tmp_path / "ct2"),
                 "--format", "ctranslate2"]) == 0
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "ct2_int8"),
                 "--format", "ctranslate2", "--quantize", "int8"]) == 0
    capsys.readouterr()
    source = tmp_path / "in.txt"
    source.write_text("\n".join(SOURCES[:12]) + "\n", "utf-8")

    def translate(directory, *sets):
        output = tmp_path / "out.txt"
        assert main(["translate", str(directory), "--input", str(source), "--output",
                     str(output), *sets]) == 0
        return output.read_text("utf-8").splitlines()

    from_run = translate(tmp_path / "run")
    assert translate(tmp_path / "ct2") == from_run
    assert translate(tmp_path / "run" / "export" / "ctranslate2") == from_run
    greedy = ["--set", "decoding.strategy=greedy"]
    assert translate(tmp_path / "ct2", *greedy) == translate(tmp_path / "run", *greedy)
    int8 = translate(tmp_path / "ct2_int8")
    assert len(int8) == 12 and sum(bool(line) for line in int8) >= 10
    int8_weights = (tmp_path / "ct2_int8" / "model.bin").stat().st_size
    assert int8_weights < 0.6 * (tmp_path / "ct2" / "model.bin").stat().st_size
    # Only decoding settings apply to a converted model.
    assert main(["translate", str(tmp_path / "ct2"), "--input", str(source),
                 "--set", "model.dropout=0.2"]) == 2
    assert "expected decoding.* settings only" in capsys.readouterr().err


def test_a_model_that_runs_in_bfloat16_converts_with_float32_weights_and_positions():
    # The converted model computes in float32 (or int8): its sinusoids are written as a float32
    # table, not as the bfloat16 values a mixed-precision model adds; checked against the
    # formula (sin on even features, cos on odd, 10000 ** (2i / d)).
    import keras

    from seq2seq.export.ctranslate2 import transformer_spec
    from seq2seq.models import Transformer

    keras.config.set_dtype_policy("mixed_bfloat16")
    model = Transformer.from_size("tiny", source_vocabulary_size=20, target_vocabulary_size=20,
                                  max_length=40, share_embeddings=True)
    model((np.ones((1, 2), "int32"), np.ones((1, 2), "int32")))
    tokens = ["<pad>", "<s>", "</s>", "<unk>", *(f"t{i}" for i in range(16))]
    spec = transformer_spec(model, tokens, tokens, {"bos": "<s>", "eos": "</s>", "unk": "<unk>"})
    positions, features = np.arange(40)[:, None], np.arange(32)[None, :]
    angles = positions / 10000 ** ((features // 2 * 2) / 32)
    expected = np.where(features % 2 == 0, np.sin(angles), np.cos(angles))
    encodings = spec.encoder.position_encodings.encodings
    assert encodings.dtype == np.float32 and encodings.shape == (40, 32)
    np.testing.assert_allclose(encodings, expected, atol=2e-6)
    np.testing.assert_array_equal(spec.decoder.position_encodings.encodings, encodings)
    np.testing.assert_array_equal(spec.decoder.projection.weight,
                                  np.asarray(model.target_embedding.token_embedding.embeddings))
    assert spec.decoder.projection.weight.dtype == np.float32
