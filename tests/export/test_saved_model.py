"""The SavedModel for TF Serving: self-contained, stock ops only, equal to translate()."""

import json
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq.config import DecodingConfig, ExportConfig
from seq2seq.data.readers import read_tsv
from seq2seq.decoding import BeamSearch, from_config
from seq2seq.decoding.translator import Translator
from seq2seq.export.saved_model import WARMUP_FILE, export_translator, graph_ops, quantized
from seq2seq.models import Transformer
from seq2seq.text.tokenizer import train_tokenizer

PAIRS = read_tsv("tests/fixtures/libreoffice-help.en-de.tsv")
NORMAL = ["Choose Tools - Options.", "Insert a new sheet."]
BAD = ["", "   ", "caf\udce9", "Sheet " * 200_000]  # empty, blank, invalid UTF-8, 1.2 MB
STRATEGY = BeamSearch(beam_size=3, alpha=0.6, n_best=2, max_length=16)
LEAN = ExportConfig(controls=False)  # without the control signatures: faster to save


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """An export moved away from where it was written, its origin deleted."""
    tmp = tmp_path_factory.mktemp("export")
    tokenizer = train_tokenizer([s for p in PAIRS for s in p], vocabulary_size=500)
    keras.utils.set_random_seed(5)
    model = Transformer.from_size("tiny", source_vocabulary_size=500,
                                  target_vocabulary_size=500, max_length=16, dropout=0.0)
    translator = Translator(model, tokenizer, tokenizer)
    path = export_translator(translator, tmp / "run" / "export", strategy=STRATEGY, version=3,
                             warmup_texts=NORMAL)
    assert path == tmp / "run" / "export" / "3"
    served = tmp / "serving" / "seq2seq"
    shutil.copytree(tmp / "run" / "export", served)
    shutil.rmtree(tmp / "run")
    return translator, served


def serve(export_dir, texts, signature="serving_default", fails=False, **options):
    """Loads the export in a fresh process that imports only tensorflow and tensorflow_text
    and calls `signature` with `texts` and scalar `options`; returns its outputs, or with
    `fails` the error the process printed."""
    probe = f"""
import json, sys
import tensorflow as tf, tensorflow_text
keras_by_tensorflow = "keras" in sys.modules  # whatever tensorflow itself imports
model = tf.saved_model.load({str(export_dir)!r})
request = json.loads(sys.stdin.read())
texts = [t.encode("utf-8", "surrogateescape") for t in request["texts"]]
options = {{k: tf.constant(v, tf.float32 if k == "alpha" else tf.int32)
           for k, v in request["options"].items()}}
out = model.signatures[{signature!r}](text=tf.constant(texts), **options)
print(json.dumps({{"translations": [[t.decode("utf-8", "replace") for t in row]
                                   for row in out["translations"].numpy().tolist()],
                  "scores": out["scores"].numpy().tolist(),
                  "modules": sorted(m for m in sys.modules if m.split(".")[0] == "seq2seq"
                                    or (m == "keras" and not keras_by_tensorflow))}}))
"""
    result = subprocess.run([sys.executable, "-c", probe],
                            input=json.dumps({"texts": texts, "options": options}),
                            capture_output=True, text=True)
    if fails:
        assert result.returncode != 0
        return result.stderr
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_served_translations_equal_translate(exported):
    translator, served = exported
    texts = NORMAL + ["The Template Library"]
    out = serve(served / "3", texts)
    expected = translator.translate(texts, beam_size=3, alpha=0.6, n_best=2, max_length=16,
                                    return_scores=True)
    assert out["translations"] == [[t for t, _ in row] for row in expected]
    np.testing.assert_allclose(out["scores"], [[s for _, s in row] for row in expected],
                               atol=1e-4)
    assert out["modules"] == []


def test_per_request_overrides_equal_translate_with_those_settings(exported):
    translator, served = exported
    texts = NORMAL + ["The Template Library"]
    defaults = serve(served / "3", texts, "translate_with_options", alpha=0.6, max_length=16,
                     n_best=2)
    assert defaults["translations"] == serve(served / "3", texts)["translations"]
    out = serve(served / "3", texts, "translate_with_options", alpha=2.0, max_length=6, n_best=1)
    expected = translator.translate(texts, beam_size=3, alpha=2.0, n_best=2, max_length=6,
                                    return_scores=True)
    assert out["translations"] == [[row[0][0]] for row in expected]
    np.testing.assert_allclose(out["scores"], [[row[0][1]] for row in expected], atol=1e-4)


@pytest.mark.parametrize("options, message", [
    (dict(alpha=0.6, max_length=99, n_best=1), "expected max_length <= 16, the maximum fixed"),
    (dict(alpha=0.6, max_length=16, n_best=3), "expected n_best <= 2, the n-best fixed"),
    (dict(alpha=-1.0, max_length=16, n_best=1), "expected alpha >= 0"),
])
def test_out_of_range_overrides_are_rejected_with_the_allowed_range(exported, options, message):
    _, served = exported
    error = serve(served / "3", NORMAL, "translate_with_options", fails=True, **options)
    assert message in error


def test_bad_input_through_the_signature(exported):
    translator, served = exported
    alone = serve(served / "3", NORMAL)["translations"]
    mixed = [BAD[0], NORMAL[0], BAD[1], BAD[2], NORMAL[1], BAD[3]]
    out = serve(served / "3", mixed)
    assert len(out["translations"]) == len(mixed)
    assert [out["translations"][1], out["translations"][4]] == alone


def serve_each(export_dir, requests):
    """Like `serve`, several `(signature, texts, options)` requests in one fresh process (TF
    only); returns per request its translations or its error message."""
    probe = f"""
import json, sys
import tensorflow as tf, tensorflow_text
model = tf.saved_model.load({str(export_dir)!r})
answers = []
for signature, texts, options in json.loads(sys.stdin.read()):
    options = {{k: tf.constant(v, tf.float32 if k == "alpha" else tf.int32)
               for k, v in options.items()}}
    try:
        out = model.signatures[signature](text=tf.constant(texts), **options)
        answers.append([[t.decode() for t in row] for row in out["translations"].numpy()])
    except tf.errors.InvalidArgumentError as error:
        answers.append(error.message)
print(json.dumps(answers))
"""
    result = subprocess.run([sys.executable, "-c", probe], input=json.dumps(requests),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_request_limits_are_enforced_in_the_graph(exported, tmp_path):
    translator, _ = exported
    limits = ExportConfig(max_inputs_per_request=3, max_input_bytes=40, max_sentences_per_input=2,
                          controls=False)
    by_sentence = Translator(translator.model, translator.source_tokenizer,
                             translator.target_tokenizer, split_sentences=True)
    path = export_translator(by_sentence, tmp_path / "limited", limits=limits,
                             strategy=STRATEGY)
    # A text is cut to 40 bytes before it is split and tokenized: of a longer one, what is
    # translated is its first 40 bytes, the same as sending those.
    long = "Choose the Edit command and the menu " * 1000
    options = dict(alpha=0.6, max_length=16, n_best=1)
    too_many, too_long, cut, with_options = serve_each(path, [
        ("serving_default", NORMAL * 2, {}),
        ("serving_default", ["Click OK.", "Click OK. Click Cancel. Click Help."], {}),
        ("serving_default", [long, long[:40]], {}),
        ("translate_with_options", NORMAL * 2, options),
    ])
    assert "expected at most export.max_inputs_per_request=3 inputs per request" in too_many
    assert "[x (Size:0) = ] [4]" in too_many
    assert "expected at most export.max_sentences_per_input=2 sentences in a text" in too_long
    assert "= ] [3] [y" in too_long
    assert cut[0] == cut[1]
    assert "export.max_inputs_per_request=3" in with_options


def assert_stock_ops(export_dir):
    used = graph_ops(export_dir)
    registry = """
import json, sys
from tensorflow.python.framework import op_def_registry
names = json.loads(sys.stdin.read())
core = [n for n in names if op_def_registry.get(n) is not None]
import tensorflow_text
text = [n for n in names if n not in core and op_def_registry.get(n) is not None]
print(json.dumps({"core": core, "text": text}))
"""
    result = subprocess.run([sys.executable, "-c", registry], input=json.dumps(sorted(used)),
                            capture_output=True, text=True, check=True)
    found = json.loads(result.stdout.strip().splitlines()[-1])
    unknown = used - set(found["core"]) - set(found["text"])
    assert not unknown, f"ops outside TensorFlow core and tensorflow-text: {sorted(unknown)}"
    assert any("Sentencepiece" in op for op in found["text"])


def test_only_stock_tensorflow_serving_ops(exported):
    _, served = exported
    assert_stock_ops(served / "3")


def test_int8_export_serves_the_quantized_model_and_leaves_the_trained_one(exported, tmp_path):
    translator, _ = exported
    before = [w.copy() for w in translator.model.get_weights()]
    texts = NORMAL + ["The Template Library"]
    float_translations = translator.translate(texts, beam_size=3, n_best=2, max_length=16)
    path = export_translator(translator, tmp_path / "int8", quantize="int8",
                             strategy=STRATEGY, limits=LEAN)
    # The trained model is untouched: same weights, all float32, same translations.
    after = translator.model.get_weights()
    assert all(a.dtype == "float32" and np.array_equal(a, b) for a, b in zip(after, before))
    assert translator.translate(texts, beam_size=3, n_best=2, max_length=16) == float_translations
    # The export holds int8 kernels and serves what the quantized model translates in process.
    dtypes = tf.train.load_checkpoint(str(path / "variables" / "variables"))
    int8 = [n for n, d in dtypes.get_variable_to_dtype_map().items() if d == tf.int8]
    assert len(int8) >= 2 * len(translator.model.decoder_layers)
    expected = quantized(translator, "int8").translate(
        texts, beam_size=3, alpha=0.6, n_best=2, max_length=16, return_scores=True)
    out = serve(path, texts)
    assert out["translations"] == [[t for t, _ in row] for row in expected]
    np.testing.assert_allclose(out["scores"], [[s for _, s in row] for row in expected],
                               atol=1e-4)
    assert_stock_ops(path)
    # export.controls false: the four signatures without the controls.
    assert sorted(tf.saved_model.load(str(path)).signatures) == [
        "score", "serving_default", "translate_ids", "translate_with_options"]
    with pytest.raises(ValueError, match="export.quantize='int4'; expected one of int8 or None"):
        export_translator(translator, strategy=STRATEGY, out_dir=tmp_path / "int4", quantize="int4")


def test_split_sentences_export_serves_what_translate_gives(exported, tmp_path):
    translator, _ = exported
    by_sentence = Translator(translator.model, translator.source_tokenizer,
                             translator.target_tokenizer, split_sentences=True)
    path = export_translator(by_sentence, tmp_path / "split", strategy=STRATEGY, limits=LEAN)
    paragraphs = [" ".join(NORMAL), "The Template Library"]
    expected = by_sentence.translate(paragraphs, beam_size=3, alpha=0.6, n_best=2,
                                     max_length=16, return_scores=True)
    assert expected[0][0][0] == " ".join(translator.translate(NORMAL, beam_size=3, max_length=16))
    out = serve(path, paragraphs)
    assert out["translations"] == [[t for t, _ in row] for row in expected]
    np.testing.assert_allclose(out["scores"], [[s for _, s in row] for row in expected],
                               atol=1e-4)
    shorter = serve(path, paragraphs, "translate_with_options", alpha=0.6, max_length=6, n_best=1)
    expected = by_sentence.translate(paragraphs, beam_size=3, n_best=2, max_length=6)
    assert shorter["translations"] == [[row[0]] for row in expected]
    assert_stock_ops(path)


def test_layout_signatures_and_warmup_requests(exported):
    from tensorflow_serving.apis import prediction_log_pb2

    _, served = exported
    assert sorted(p.name for p in served.iterdir()) == ["3"]
    shown = subprocess.run(["saved_model_cli", "show", "--dir", str(served / "3"), "--all"],
                           capture_output=True, text=True, check=True).stdout
    assert "signature_def['serving_default']" in shown
    assert "signature_def['translate_ids']" in shown
    assert "signature_def['translate_with_options']" in shown
    assert "signature_def['score']" in shown and "inputs['target']" in shown
    assert "signature_def['translate_with_details']" in shown
    assert "signature_def['translate_with_terms']" in shown and "inputs['prefix']" in shown
    assert "inputs['constraints']" in shown and "outputs['constraints_met']" in shown
    assert "inputs['max_length']" in shown and "inputs['n_best']" in shown
    assert "inputs['text']" in shown and "outputs['translations']" in shown
    requests = []
    for record in tf.data.TFRecordDataset(str(served / "3" / "assets.extra" / WARMUP_FILE)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        requests.append(tf.make_ndarray(log.predict_log.request.inputs["text"])[0].decode())
    assert requests == NORMAL
    ids = tf.saved_model.load(str(served / "3")).signatures["translate_ids"]
    out = ids(source_ids=tf.constant([[5, 6, 7, 2]], tf.int32))
    assert out["tokens"].shape == (1, 2, 16) and out["scores"].shape == (1, 2)


def test_a_sampling_export_serves_the_samples_translate_draws(exported, tmp_path):
    translator, _ = exported
    decoding = DecodingConfig(strategy="sampling", top_k=5, temperature=0.7, seed=3,
                              max_length=16)
    path = export_translator(translator, tmp_path / "export", version=1,
                             strategy=from_config(decoding), limits=LEAN)
    # The seed state is saved as it was: a fresh load draws the first samples of that seed.
    # A row's samples depend on its place in the batch, and translate() batches by length.
    texts = sorted(NORMAL, key=len)
    expected = translator.translate(texts, strategy="sampling", top_k=5, temperature=0.7,
                                    seed=3, max_length=16)
    served = serve(path, texts)
    assert [row[0] for row in served["translations"]] == expected
    assert expected != translator.translate(texts, strategy="greedy")  # it did sample


def test_a_failed_export_leaves_the_previous_version_and_a_new_one_replaces_it(
        exported, tmp_path, monkeypatch):
    translator, _ = exported
    previous = tmp_path / "export" / "1"
    (previous / "variables").mkdir(parents=True)
    (previous / "saved_model.pb").write_bytes(b"the version being served")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        export_translator(translator, strategy=STRATEGY, out_dir=tmp_path / "export", version=1)
    monkeypatch.undo()
    assert (previous / "saved_model.pb").read_bytes() == b"the version being served"
    assert [p.name for p in (tmp_path / "export").iterdir()] == ["1"]
    # Exporting again over it replaces it whole, leaving nothing else in the directory.
    export_translator(translator, tmp_path / "export", version=1, strategy=STRATEGY, limits=LEAN)
    assert [p.name for p in (tmp_path / "export").iterdir()] == ["1"]
    assert tf.saved_model.contains_saved_model(str(previous))
    assert (previous / "saved_model.pb").read_bytes() != b"the version being served"


def test_the_score_signature_serves_what_translator_score_gives(exported):
    # In a process with only tensorflow and tensorflow_text; ragged per-token scores come
    # padded with zeros, with each target's token count.
    translator, served = exported
    sources, targets = [s for s, _ in PAIRS[:5]], [t for _, t in PAIRS[:5]]
    probe = f"""
import json
import tensorflow as tf, tensorflow_text
score = tf.saved_model.load({str(served / "3")!r}).signatures["score"]
out = score(text=tf.constant({sources!r}), target=tf.constant({targets!r}))
print(json.dumps({{k: v.numpy().tolist() for k, v in out.items()}}))
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    expected = translator.score(sources, targets)
    np.testing.assert_allclose(out["scores"], [total for total, _ in expected], atol=1e-4)
    assert out["lengths"] == [len(tokens) for _, tokens in expected]
    for row, length, (_, tokens) in zip(out["token_scores"], out["lengths"], expected):
        np.testing.assert_allclose(row[:length], tokens, atol=1e-4)
        assert row[length:] == [0.0] * (len(row) - length)
    # One target per text, checked in the graph.
    mismatched = probe.replace(f"target=tf.constant({targets!r})",
                               f"target=tf.constant({targets[:2]!r})")
    result = subprocess.run([sys.executable, "-c", mismatched], capture_output=True, text=True)
    assert result.returncode != 0 and "expected one target per text" in result.stderr


def call_signature(export_dir, signature, **inputs):
    """All outputs of `signature` called with string `inputs`, in a fresh process that imports
    only tensorflow and tensorflow_text, as lists (strings decoded)."""
    probe = f"""
import json, sys
import tensorflow as tf, tensorflow_text
model = tf.saved_model.load({str(export_dir)!r})
inputs = {{k: tf.constant(v, tf.string) for k, v in json.loads(sys.stdin.read()).items()}}
out = model.signatures[{signature!r}](**inputs)
decode = lambda x: x.decode() if isinstance(x, bytes) else x
as_lists = lambda x: [as_lists(y) for y in x] if isinstance(x, list) else decode(x)
print(json.dumps({{k: as_lists(v.numpy().tolist()) for k, v in out.items()}}))
print(json.dumps(model.strategy_config.numpy().decode()))
"""
    result = subprocess.run([sys.executable, "-c", probe], input=json.dumps(inputs),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    outputs, strategy = result.stdout.strip().splitlines()[-2:]
    return json.loads(outputs), json.loads(json.loads(strategy))


def test_prefix_constraints_alignments_and_confidence_are_served_as_translate_gives_them(
        exported):
    translator, served = exported
    texts = NORMAL + ["The Template Library"]
    prefixes = ["Wählen Sie", "", ""]
    constraints = [["Optionen", ""], ["Tabelle", "neue"], ["", ""]]
    out, strategy = call_signature(served / "3", "translate_with_terms", text=texts,
                                   prefix=prefixes, constraints=constraints)
    assert strategy == STRATEGY.get_config()
    expected = translator.translate(texts, STRATEGY, prefixes=prefixes,
                                    constraints=[[p for p in row if p] for row in constraints],
                                    return_alignments=True)
    for j, row in enumerate(expected):
        for k, hypothesis in enumerate(row):
            assert out["translations"][j][k] == hypothesis["translation"]
            assert out["constraints_met"][j][k] == hypothesis["constraints_met"]
            tokens = [t for t in out["tokens"][j][k] if t]
            assert tokens == hypothesis["tokens"]
            assert out["alignments"][j][k][: len(tokens)] == hypothesis["alignments"]
            assert out["min_prob"][j][k] == pytest.approx(hypothesis["min_prob"], rel=1e-4)
            assert out["mean_log_prob"][j][k] == pytest.approx(hypothesis["mean_log_prob"],
                                                               abs=1e-4)
    assert out["translations"][0][0].startswith("Wählen Sie")
    assert out["constraints_met"][0][0] and "Optionen" in out["translations"][0][0]
    assert out["constraints_met"][1][0] and "Tabelle" in out["translations"][1][0]
    details, _ = call_signature(served / "3", "translate_with_details", text=texts)
    plain = translator.translate(texts, STRATEGY, return_alignments=True)
    assert details["translations"] == [[h["translation"] for h in row] for row in plain]
    assert details["source_tokens"][0][: len(plain[0][0]["source_tokens"])] == \
        plain[0][0]["source_tokens"]
