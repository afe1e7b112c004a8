"""A SavedModel that TensorFlow Serving loads as it is: raw strings in, translations out.

Tokenization (tensorflow-text), the cached search and detokenization are all in the graph;
the tokenizer models travel inside the SavedModel as resources, so nothing outside it is
needed to serve. The export is written to `OUT/<version>.partial` and renamed to
`OUT/<version>` when complete: a failed export never leaves a half-written version behind, and
never touches the version it would replace.
"""

import json
import os
import pathlib
import shutil
import warnings

import tensorflow as tf

from seq2seq.config import ExportConfig
from seq2seq.text import sentences

QUANTIZATION_MODES = ("int8",)


def quantized(translator, mode):
    """A copy of `translator` whose model has `mode` weights (Keras' `Model.quantize`).

    "int8": the kernels of every Dense layer and the token embeddings (with their tied output
    projection) become int8 with per-channel float scales; activations are quantized on the fly.
    Keras quantizes in place, so the copy keeps the trained model as it was.
    """
    if mode not in QUANTIZATION_MODES:
        raise ValueError(
            f"export.quantize={mode!r}; expected one of {', '.join(QUANTIZATION_MODES)} or None."
        )
    model = translator.model
    copy = model.__class__.from_config(model.get_config())
    copy.build(((None, None), (None, None)))
    copy.set_weights(model.get_weights())
    with warnings.catch_warnings():  # "Layer LayerNormalization does not have a `quantize`..."
        warnings.filterwarnings("ignore", message=".*does not have a `quantize` method")
        copy.quantize(mode)
    return translator.with_model(copy)


class TranslationModule(tf.Module):
    """The serving module: a `Translator`, its decoding strategy and request limits.

    Every request is one search batch of all its sentences, so its size is bounded in the graph
    (`ExportConfig`): more than `max_inputs_per_request` texts, or with sentence splitting more
    than `max_sentences_per_input` sentences in a text, is refused with an InvalidArgument
    error that says the limit and what was sent; a text over `max_input_bytes` is cut to that
    many bytes before it is tokenized (the model reads at most its `max_length` tokens of it).

    Signatures:
        serving_default: `text` string `[batch]` -> `translations` string `[batch, n_best]`,
            `scores` float32 `[batch, n_best]`.
        translate_with_options: `text` as above plus the per-request overrides `alpha`
            float32 `[]` (length penalty), `max_length` int32 `[]` (2 .. the exported maximum)
            and `n_best` int32 `[]` (1 .. the exported n-best); same outputs, `n_best` columns.
            TF Serving feeds every input of a signature, so the overrides are a signature of
            their own rather than optional inputs of `serving_default`. The beam size is fixed:
            it sets the shapes of the compiled search.
        translate_with_details (with `ExportConfig.controls`): `text` -> the outputs of
            `serving_default` and, per hypothesis, its target pieces `tokens` string
            `[batch, n_best, length]`, each piece's source position `alignments` int32 (-1 as
            padding) into `source_tokens` string `[batch, source_length]`, `token_log_probs`
            float32, and its confidence: `mean_log_prob` and `min_prob` float32
            `[batch, n_best]` (see `Translator._details`).
        translate_with_terms (with `ExportConfig.controls`): `text`, `prefix` string
            `[batch]` (target text each translation starts with; "" for none) and
            `constraints` string `[batch, k]` (target phrases each translation must contain;
            "" for none; beam search only) -> the outputs of `translate_with_details` and
            `constraints_met` bool `[batch, n_best]` (false: the phrases could not all be met
            within the length, and this is the best translation without them). Texts are not
            split into sentences here (nor in `translate_with_details`).
        translate_ids: `source_ids` int32 `[batch, length]` (0-padded, ending with the end id)
            -> `tokens` int32 `[batch, n_best, max_length]`, `scores` float32 `[batch, n_best]`.
        score: `text` and `target` string `[batch]` -> the target's teacher-forced
            log-probability, `scores` float32 `[batch]`, per token `token_scores` float32
            `[batch, length]` (0 past its end) and `lengths` int32 `[batch]` (see
            `Translator.score_graph`: whole texts, not split into sentences).

    Attributes:
        strategy_config: string variable, the JSON of the exported strategy's `get_config()`.
    """

    def __init__(self, translator, strategy=None, limits=None):
        super().__init__(name="translation")
        self.limits = limits or ExportConfig()
        self.translator = translator
        self.model = translator.model
        self.source_tokenizer = translator.source_tokenizer
        self.target_tokenizer = translator.target_tokenizer
        self.strategy = strategy or translator.strategy
        self.strategy_config = tf.Variable(json.dumps(self.strategy.get_config()),
                                           trainable=False, name="strategy_config")
        # A sampler's seed state is a variable the signatures update: tracked, so it is saved.
        seeds = getattr(self.strategy, "seed_generator", None)
        self.seed_state = [] if seeds is None else [seeds.state]
        self.max_length = self.strategy.output_length(self.model)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        return self.translator.translate_graph(self._within_limits(text), self.strategy)

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name="text"),
        tf.TensorSpec([], tf.float32, name="alpha"),
        tf.TensorSpec([], tf.int32, name="max_length"),
        tf.TensorSpec([], tf.int32, name="n_best"),
    ])
    def serve_with_options(self, text, alpha, max_length, n_best):
        text = self._within_limits(text)
        checks = [
            _expect(alpha, ">=", 0.0, "alpha"),
            _expect(max_length, ">=", 2, "max_length"),
            _expect(max_length, "<=", self.max_length, "max_length",
                    "the maximum fixed at export"),
            _expect(n_best, ">=", 1, "n_best"),
            _expect(n_best, "<=", self.strategy.n_best, "n_best", "the n-best fixed at export"),
        ]
        # A strategy without a length penalty keeps itself (the sampler's seed state is a
        # variable, which cannot be created inside this function).
        strategy = self.strategy.replace(alpha=alpha)
        with tf.control_dependencies(checks):
            outputs = self.translator.translate_graph(text, strategy, length_limit=max_length)
        return {name: value[:, :n_best] for name, value in outputs.items()}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve_with_details(self, text):
        text = self._within_limits(text, split=False)
        return self.translator.translate_graph(text, self.strategy, details=True)

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name="text"),
        tf.TensorSpec([None], tf.string, name="prefix"),
        tf.TensorSpec([None, None], tf.string, name="constraints"),
    ])
    def serve_with_terms(self, text, prefix, constraints):
        rows = tf.size(text)
        checks = [
            tf.debugging.assert_equal(tf.size(prefix), rows, message=(
                "translate_with_terms: expected one prefix per text; got prefixes, texts")),
            tf.debugging.assert_equal(tf.shape(constraints)[0], rows, message=(
                "translate_with_terms: expected one row of constraints per text; got rows, "
                "texts")),
        ]
        takes = self.strategy.takes_constraints
        if not takes:
            checks.append(tf.debugging.assert_equal(
                tf.reduce_all(tf.equal(constraints, "")), True, message=(
                    f"translate_with_terms: constraints need decoding.strategy beam; this "
                    f"export's is {self.strategy.name}: expected empty constraints")))
        with tf.control_dependencies(checks):
            text = self._within_limits(text, split=False)
            prefix = tf.strings.substr(prefix, 0, self.limits.max_input_bytes)
            constraints = tf.strings.substr(constraints, 0, self.limits.max_input_bytes)
        outputs = self.translator.translate_graph(
            text, self.strategy, prefixes=prefix, constraints=constraints if takes else None,
            details=True)
        if not takes:
            outputs["constraints_met"] = tf.ones_like(outputs["scores"], tf.bool)
        return outputs

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                  tf.TensorSpec([None], tf.string, name="target")])
    def serve_score(self, text, target):
        checks = [tf.debugging.assert_equal(
            tf.size(target), tf.size(text),
            message="score: expected one target per text; got targets, texts")]
        with tf.control_dependencies(checks):
            text = self._within_limits(text, split=False)
            target = tf.strings.substr(target, 0, self.limits.max_input_bytes)
        totals, tokens, lengths = self.translator.score_graph(text, target)
        return {"scores": totals, "token_scores": tokens, "lengths": lengths}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="source_ids")])
    def serve_ids(self, source_ids):
        from seq2seq.decoding import generate

        with tf.control_dependencies([self._request_size(tf.shape(source_ids)[0])]):
            source_ids = tf.identity(source_ids)
        result = generate(self.model, source_ids, self.strategy, self.max_length)
        return {"tokens": tf.convert_to_tensor(result.tokens),
                "scores": tf.convert_to_tensor(result.scores)}

    def _request_size(self, count):
        limit = self.limits.max_inputs_per_request
        return tf.debugging.assert_less_equal(
            count, limit, message=f"expected at most export.max_inputs_per_request={limit} "
            "inputs per request (send more requests); got")

    def _within_limits(self, text, split=True):
        """`text` cut to `max_input_bytes`, after checking the request's size (and, where the
        translator splits sentences and `split`, their number)."""
        checks = [self._request_size(tf.size(text))]
        text = tf.strings.substr(text, 0, self.limits.max_input_bytes)
        if self.translator.split_sentences and split:
            limit = self.limits.max_sentences_per_input
            counts = tf.concat([[0], sentences.split(text).row_lengths()], axis=0)
            checks.append(tf.debugging.assert_less_equal(
                tf.reduce_max(counts), tf.cast(limit, tf.int64),
                message=f"expected at most export.max_sentences_per_input={limit} sentences in "
                "a text (send a long document in parts); its longest text has"))
        with tf.control_dependencies(checks):
            return tf.identity(text)


def _expect(value, relation, bound, name, why=""):
    """An in-graph check of a request value that fails with what was expected and received."""
    check = {">=": tf.debugging.assert_greater_equal, "<=": tf.debugging.assert_less_equal}
    reason = f", {why}" if why else ""
    return check[relation](
        value, bound,
        message=f"translate_with_options: expected {name} {relation} {bound}{reason}; got")


WARMUP_FILE = "tf_serving_warmup_requests"


def write_warmup_requests(export_dir, texts, model_name="seq2seq"):
    """`assets.extra/tf_serving_warmup_requests`: PredictionLogs TF Serving replays at load."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    extra = pathlib.Path(export_dir) / "assets.extra"
    extra.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(extra / WARMUP_FILE)) as writer:
        for text in texts:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name="serving_default"),
                inputs={"text": tf.make_tensor_proto([text], dtype=tf.string)},
            )
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())


def graph_ops(export_dir):
    """The set of op types in a SavedModel's graph and function library."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((pathlib.Path(export_dir) / "saved_model.pb").read_bytes())
    ops = set()
    for meta_graph in saved_model.meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    return ops


def export_translator(translator, out_dir, version=1, warmup_texts=(), quantize=None,
                      limits=None, strategy=None):
    """Writes the SavedModel to `out_dir/<version>` and returns that path.

    Args:
        translator: the `Translator` to serve.
        out_dir: the model's base directory (TF Serving's `--model_base_path`).
        version: the version subdirectory.
        warmup_texts: a few real requests for `assets.extra/tf_serving_warmup_requests`.
        quantize: None, or "int8" to export int8 weights (see `quantized`); the translator
            passed in is left as it is.
        limits: an `ExportConfig` whose request limits the export enforces, and whose
            `controls` adds the signatures `translate_with_details` and `translate_with_terms`
            (default its defaults; see `TranslationModule`).
        strategy: the search fixed in the export (a `seq2seq.decoding.Strategy`); default the
            translator's.
    """
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir={out_dir!r}; expected a directory path (the strategy comes "
                        "from the translator, or strategy=).")
    if quantize:
        translator = quantized(translator, quantize)
    out_dir = pathlib.Path(out_dir)
    final = out_dir / str(version)
    partial = out_dir / f"{version}.partial"
    replaced = out_dir / f"{version}.replaced"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(replaced, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    module = TranslationModule(translator, strategy, limits)
    signatures = {
        "serving_default": module.serve.get_concrete_function(),
        "translate_with_options": module.serve_with_options.get_concrete_function(),
        "translate_ids": module.serve_ids.get_concrete_function(),
        "score": module.serve_score.get_concrete_function(),
    }
    if module.limits.controls:
        signatures["translate_with_details"] = module.serve_with_details.get_concrete_function()
        signatures["translate_with_terms"] = module.serve_with_terms.get_concrete_function()
    tf.saved_model.save(module, str(partial), signatures=signatures)
    if warmup_texts:
        write_warmup_requests(partial, list(warmup_texts))
    # Renames only, so a server watching `out_dir` never sees a half-deleted version (only
    # numeric directories are versions to TF Serving), and a crash between the two renames
    # leaves the previous export whole in `<version>.replaced`.
    if final.exists():
        final.rename(replaced)
    partial.rename(final)
    shutil.rmtree(replaced, ignore_errors=True)
    return final
