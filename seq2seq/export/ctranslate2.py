"""CTranslate2: a run's model converted for the CTranslate2 runtime, and a translator over it.

CTranslate2 serves Transformers on CPUs and GPUs with its own C++ kernels (int8 on a CPU where
TensorFlow's int8 matmul falls back to Eigen) and converts from OpenNMT, fairseq, Marian and
Hugging Face, but from no Keras toolkit. Our model maps onto its `TransformerSpec` weight for
weight: the fused self-attention projection, `[q | k | v]` with heads-major columns in each
part, is its fused layout, as is the cross-attention's `[k | v]`; Keras kernels are
`(in, out)` and CTranslate2's `(out, in)`. Positions are written as an explicit table (its
own sinusoids put sines and cosines in halves and start at position 1; ours interleave and
start at 0).

Decoding conventions are mapped so that the two runtimes search alike (tests/export/
test_ctranslate2.py decodes with both, token for token): the source gets the end token
(`add_source_eos`), the output counts no start token (`max_decoding_length` is our
`max_length - 1`), an empty output is allowed (`min_decoding_length` is our `min_length`).
Its length penalty divides by `length ** p`, ours is GNMT's `((5 + length) / 6) ** alpha`:
with alpha 0 they are the same search; otherwise the translator asks CTranslate2 for raw-score
hypotheses of a patient beam and ranks them with GNMT (`CTRANSLATE2_PATIENCE` explains the
patience). Two differences remain: the coverage penalty has no counterpart and is refused, and
under a `min_length` CTranslate2 renormalises each step's probabilities without the end token
(greedy search picks the same tokens with other scores; a beam may rank differently).
"""

import json
import pathlib
import shutil

import numpy as np

from seq2seq import atomic
from seq2seq import config as config_lib
from seq2seq.decoding import for_call, from_config
from seq2seq.text.tokenizer import END_ID, START_ID, UNK_ID, Tokenizer

MANIFEST = "seq2seq.json"  # the run's config, which the translator reads its settings from
QUANTIZATION_MODES = ("int8",)
# Beam patience (CTranslate2 keeps searching until beam_size * patience hypotheses ended) for
# GNMT ranking. Its search stops by its own rule, not GNMT's, so with alpha > 0 a longer
# hypothesis that GNMT would prefer may not have been found by the time it stops: patience 4
# finds our search's outputs on the translation recipe's model all but rarely, patience 1 is
# faster and differs more often (bench/ctranslate2.py, docs/benchmarks.md).
CTRANSLATE2_PATIENCE = 4
_ACTIVATIONS = {"relu": "RELU", "gelu": "GELU", "silu": "SWISH", "swish": "SWISH"}


def _import_ctranslate2():
    try:
        import ctranslate2
        import ctranslate2.converters  # noqa: F401  (submodules the package does not import)
        import ctranslate2.specs  # noqa: F401
    except ImportError as error:  # an optional extra
        raise ImportError("The CTranslate2 export needs the ctranslate2 package: "
                          "pip install 'seq2seq[ctranslate2]'.") from error
    return ctranslate2


def _linear(spec, dense):
    spec.weight = np.ascontiguousarray(np.asarray(dense.kernel, np.float32).T)
    spec.bias = np.asarray(dense.bias, np.float32)


def _norm(spec, norm):
    spec.gamma = np.asarray(norm.gamma, np.float32)
    spec.beta = np.asarray(norm.beta, np.float32)


def _positions(embedding, length):
    """`(length, hidden)` float32: the position vectors the embedding layer adds (the sinusoids
    computed in float32, whatever precision the model runs in)."""
    position = embedding.position
    if embedding.position_embedding == "learned":
        return np.asarray(position.position_embeddings, np.float32)[:length]
    float32 = position.__class__.from_config({**position.get_config(), "dtype": "float32"})
    return np.asarray(float32(np.zeros((1, length, embedding.hidden_dim), np.float32)))[0]


def _attention(spec, attention, norm):
    _norm(spec.layer_norm, norm)
    if attention.self_attention:
        _linear(spec.linear[0], attention.query_key_value_dense)
        _linear(spec.linear[1], attention.output_dense)
    else:
        _linear(spec.linear[0], attention.query_dense)
        _linear(spec.linear[1], attention.key_value_dense)
        _linear(spec.linear[2], attention.output_dense)


def _feed_forward(spec, layer):
    _norm(spec.layer_norm, layer.feed_forward_norm)
    _linear(spec.linear_0, layer.feed_forward.intermediate_dense)
    _linear(spec.linear_1, layer.feed_forward.output_dense)


def transformer_spec(model, source_vocabulary, target_vocabulary, specials):
    """The `ctranslate2.specs.TransformerSpec` of a `Transformer`'s weights.

    Args:
        model: a built `Transformer` (float32 weights are read whatever its dtype policy).
        source_vocabulary, target_vocabulary: token strings by id.
        specials: `{"bos": ..., "eos": ..., "unk": ...}` token strings.
    """
    ctranslate2 = _import_ctranslate2()
    specs = ctranslate2.specs
    activation = getattr(specs.Activation, _ACTIVATIONS[model.activation.lower()]
                         if isinstance(model.activation, str) else "RELU")
    spec = specs.TransformerSpec.from_config(
        (model.num_encoder_layers, model.num_decoder_layers), model.num_heads,
        pre_norm=model.norm_first, activation=activation)
    # The table covers every position either side may reach: model.max_length.
    length = model.max_length
    source, target = model.source_embedding, model.target_embedding
    encoder, decoder = spec.encoder, spec.decoder
    encoder.embeddings[0].weight = np.asarray(source.token_embedding.embeddings, np.float32)
    encoder.position_encodings.encodings = _positions(source, length)
    decoder.embeddings.weight = np.asarray(target.token_embedding.embeddings, np.float32)
    decoder.position_encodings.encodings = _positions(target, length)
    if model.tie_output:
        decoder.projection.weight = decoder.embeddings.weight
    else:
        decoder.projection.weight = np.ascontiguousarray(
            np.asarray(target.token_embedding.reverse_embeddings, np.float32).T)
    if target.logits_bias is not None:
        decoder.projection.bias = np.asarray(target.logits_bias, np.float32)
    encoder.scale_embeddings = decoder.scale_embeddings = model.scale_embeddings
    for layer_spec, layer in zip(encoder.layer, model.encoder_layers):
        _attention(layer_spec.self_attention, layer.self_attention, layer.self_attention_norm)
        _feed_forward(layer_spec.ffn, layer)
    for layer_spec, layer in zip(decoder.layer, model.decoder_layers):
        _attention(layer_spec.self_attention, layer.self_attention, layer.self_attention_norm)
        _attention(layer_spec.attention, layer.cross_attention, layer.cross_attention_norm)
        _feed_forward(layer_spec.ffn, layer)
    if model.norm_first:
        _norm(encoder.layer_norm, model.encoder_norm)
        _norm(decoder.layer_norm, model.decoder_norm)
    spec.config.layer_norm_epsilon = model.layer_norm_epsilon
    spec.config.add_source_eos = True
    spec.config.bos_token = spec.config.decoder_start_token = specials["bos"]
    spec.config.eos_token = specials["eos"]
    spec.config.unk_token = specials["unk"]
    spec.register_source_vocabulary(list(source_vocabulary))
    spec.register_target_vocabulary(list(target_vocabulary))
    return spec


def export_ctranslate2(model, source_tokenizer, target_tokenizer, config, out_dir,
                       quantize=None):
    """Writes a CTranslate2 model directory: model.bin, its vocabularies and config.json, the
    tokenizers (`tokenizer/source`, `tokenizer/target`) and `seq2seq.json` (the run's config,
    whose decoding settings and length limits `CTranslate2Translator` reads).

    The directory is written next to `out_dir` and renamed into place when complete, so a failed
    export leaves an existing one as it was.

    Args:
        model: a `Transformer` with the weights to convert (a run's final weights).
        source_tokenizer, target_tokenizer: the run's tokenizers.
        config: the run's `Config`.
        out_dir: the directory to write.
        quantize: None (float32 weights) or "int8".

    Returns:
        The directory's path.
    """
    ctranslate2 = _import_ctranslate2()
    if quantize not in (None, *QUANTIZATION_MODES):
        raise ValueError(f"quantize={quantize!r}; expected one of "
                         f"{', '.join(QUANTIZATION_MODES)} or None.")
    source_vocabulary, target_vocabulary = source_tokenizer.tokens(), target_tokenizer.tokens()
    specials = {"bos": target_vocabulary[START_ID], "eos": target_vocabulary[END_ID],
                "unk": target_vocabulary[UNK_ID]}
    spec = transformer_spec(model, source_vocabulary, target_vocabulary, specials)

    class Converter(ctranslate2.converters.Converter):
        def _load(self):
            return spec

    out_dir = pathlib.Path(out_dir)
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    Converter().convert(str(partial), quantization=quantize, force=True)
    source_tokenizer.save(partial / "tokenizer" / "source")
    target_tokenizer.save(partial / "tokenizer" / "target")
    manifest = {"format": "seq2seq-ctranslate2", "quantization": quantize,
                "config": config.to_dict()}
    atomic.write_text(partial / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    partial.rename(out_dir)
    return out_dir


def is_ctranslate2_directory(path):
    """Whether `path` is a directory `export_ctranslate2` wrote."""
    path = pathlib.Path(path)
    return (path / MANIFEST).is_file() and (path / "model.bin").is_file()


def gnmt_length_penalty(length, alpha):
    """GNMT's `((5 + length) / 6) ** alpha` (as `seq2seq.decoding.beam_search`)."""
    return ((5.0 + length) / 6.0) ** alpha


class CTranslate2Translator:
    """`translate(texts, ...)` over an `export_ctranslate2` directory, with the run's tokenizers
    and decoding settings; the same interface and results as `seq2seq.decoding.Translator`.

    Args:
        model_dir: the exported directory.
        overrides: `["decoding.field=value", ...]` for this use only; only decoding settings
            apply to a converted model.
        device: "cpu", "cuda" or "auto".
        compute_type: CTranslate2's compute type ("default": the weights' type; "float32",
            "int8", ...).
        inter_threads, intra_threads: CTranslate2's threading (translations run in parallel,
            threads per translation; 0 lets it choose).

    Example:
    >>> translator = CTranslate2Translator("exported/ct2")
    >>> translator.translate(["Choose Tools - Options."], beam_size=4, alpha=0.0)
    ['Wählen Sie Extras - Optionen.']
    """

    def __init__(self, model_dir, overrides=(), device="cpu", compute_type="default",
                 inter_threads=1, intra_threads=0):
        ctranslate2 = _import_ctranslate2()
        self.model_dir = pathlib.Path(model_dir)
        if not is_ctranslate2_directory(self.model_dir):
            raise FileNotFoundError(
                f"{self.model_dir} is not a CTranslate2 export of seq2seq: expected model.bin and "
                f"{MANIFEST} (written by `seq2seq export RUN OUT --format ctranslate2`).")
        self.manifest = json.loads((self.model_dir / MANIFEST).read_text())
        other = [o for o in overrides if not o.startswith("decoding.")]
        if other:
            raise ValueError(f"--set {other[0]!r} on the CTranslate2 export {self.model_dir}: "
                             "expected decoding.* settings only (the model is converted).")
        where = str(self.model_dir / MANIFEST)
        self.config = config_lib.apply_overrides(
            config_lib.from_dict(self.manifest["config"], where=where), overrides)
        self.strategy = from_config(self.config.decoding)
        self.batch_size = self.config.decoding.batch_size
        self.max_source_length = (self.config.data.max_source_length
                                  or self.config.model.max_length)
        self.split_sentences = self.config.decoding.split_sentences
        self.source_tokenizer = Tokenizer.load(
            self.model_dir / "tokenizer" / "source").with_source_prefix(
                self.config.data.source_prefix)
        self.target_tokenizer = Tokenizer.load(self.model_dir / "tokenizer" / "target")
        self.source_vocabulary = self.source_tokenizer.tokens()
        self.target_vocabulary = self.target_tokenizer.tokens()
        self.target_ids = {token: i for i, token in enumerate(self.target_vocabulary)}
        self.translator = ctranslate2.Translator(
            str(self.model_dir), device=device, compute_type=compute_type,
            inter_threads=inter_threads, intra_threads=intra_threads)
        self._ctranslate2 = ctranslate2

    def source_tokens(self, texts):
        """Source token strings, prefixed and cut as our translator encodes them (without the
        end token, which CTranslate2 adds)."""
        ids = self.source_tokenizer.encode_sources(texts, self.max_source_length)[:, :-1]
        return [[self.source_vocabulary[i] for i in row] for row in ids.to_list()]

    def _detokenize(self, hypotheses):
        """Token-string lists -> strings, in one call of the target tokenizer."""
        import tensorflow as tf

        if not hypotheses:
            return []
        flat = [self.target_ids[t] for tokens in hypotheses for t in tokens]
        ids = tf.RaggedTensor.from_row_lengths(
            tf.constant(flat, tf.int32, shape=[len(flat)]),
            tf.constant([len(tokens) for tokens in hypotheses], tf.int64))
        return [s.decode("utf-8") for s in self.target_tokenizer.detokenize(ids).numpy()]

    def decode(self, sources, n_best=1, **options):
        """Translations with the run's strategy, `n_best` per source (as `RunDirectory.decode`)."""
        return self.translate(sources, self.strategy.replace(n_best=n_best), **options)

    def translate(self, texts, strategy=None, batch_size=None, return_scores=False,
                  patience=None, **options):
        """Translates a list of strings; arguments and results as `Translator.translate`
        (without prefixes, constraints or alignments).

        `patience` (beam search with alpha > 0 only) overrides `CTRANSLATE2_PATIENCE`.
        """
        strategy = for_call(self.strategy, strategy, **options)
        config = strategy.get_config()
        if config.get("coverage_penalty"):
            raise ValueError(f"coverage_penalty={config['coverage_penalty']}: CTranslate2 has no "
                             "GNMT coverage penalty; expected 0 with the ctranslate2 engine.")
        batch_size = batch_size or self.batch_size
        texts = list(texts)
        if not texts:
            return []
        if self.split_sentences:
            from seq2seq.text import sentences

            split = sentences.split(texts).to_list()
            pieces = [s.decode("utf-8") for row in split for s in row]
            results = self._translate_sentences(pieces, strategy, batch_size, patience)
            outputs, start = [], 0
            for row in split:  # the i-th best of an input joins the i-th best of each sentence
                parts = results[start:start + len(row)]
                start += len(row)
                outputs.append([(" ".join(p[i][0] for p in parts), sum(p[i][1] for p in parts))
                                for i in range(len(parts[0]))])
        else:
            outputs = self._translate_sentences(texts, strategy, batch_size, patience)
        if not return_scores:
            outputs = [[text for text, _ in row] for row in outputs]
        return [row if strategy.n_best > 1 else row[0] for row in outputs]

    def _options(self, strategy, patience):
        """CTranslate2's `translate_batch` options for one of our strategies; the GNMT
        alpha, applied by re-ranking (0 without)."""
        config = strategy.get_config()
        max_length = strategy.output_length(self.config.model)
        # Scores are sums of log-probabilities (length_penalty 0), as ours are before GNMT.
        options = dict(max_input_length=0, return_scores=True,
                       max_decoding_length=max_length - 1,
                       min_decoding_length=config["min_length"], length_penalty=0.0)
        alpha = config.get("alpha", 0.0)
        if "beam_size" in config:
            options.update(beam_size=config["beam_size"], num_hypotheses=config["n_best"])
            if alpha:
                patience = patience or CTRANSLATE2_PATIENCE
                options.update(patience=patience, num_hypotheses=config["beam_size"] * patience,
                               return_end_token=True)
        elif "temperature" in config:
            if config["seed"] is not None:
                self._ctranslate2.set_random_seed(config["seed"])
            # Top-k 0 samples from the whole vocabulary in both (CTranslate2's default, 1, is
            # greedy search).
            options.update(beam_size=1, sampling_temperature=config["temperature"],
                           sampling_topk=config["top_k"], sampling_topp=config["top_p"])
        else:
            options.update(beam_size=1)
        return options, alpha

    def _translate_sentences(self, texts, strategy, batch_size, patience):
        """`[(text, score)] * n_best` per text."""
        options, alpha = self._options(strategy, patience)
        results = self.translator.translate_batch(self.source_tokens(texts),
                                                  max_batch_size=batch_size, **options)
        n_best = strategy.n_best
        end = self.target_vocabulary[END_ID]
        ranked_results = []
        for result in results:
            ranked = list(zip(result.hypotheses, result.scores))
            if alpha:
                # Raw log-probability sums, the end token included; length counts it, as ours.
                ranked = [(tokens, score / gnmt_length_penalty(len(tokens), alpha))
                          for tokens, score in ranked]
                # As in our search, hypotheses cut by the length limit (no end token) compete
                # only where fewer than n_best ended.
                ended = [pair for pair in ranked if pair[0][-1:] == [end]]
                if len(ended) >= n_best:
                    ranked = ended
                ranked = sorted(ranked, key=lambda pair: -pair[1])[:n_best]
                ranked = [([t for t in tokens if t != end], score) for tokens, score in ranked]
            ranked_results.append(ranked)
        strings = iter(self._detokenize([tokens for ranked in ranked_results
                                         for tokens, _ in ranked]))
        return [[(next(strings), float(score)) for _, score in ranked]
                for ranked in ranked_results]

    def score(self, sources, targets):
        """Teacher-forced log-probabilities of each target token (its end token last), as
        `[[float]]`: CTranslate2's `score_batch`. Targets are cut to `model.max_length - 1`
        tokens, as `Translator.score` cuts them."""
        import tensorflow as tf

        target_ids = self.target_tokenizer.tokenize(tf.constant(targets))
        target_ids = target_ids[:, : self.config.model.max_length - 1].to_list()
        results = self.translator.score_batch(
            self.source_tokens(sources),
            [[self.target_vocabulary[i] for i in row] for row in target_ids])
        return [list(result.log_probs) for result in results]


__all__ = ["CTranslate2Translator", "export_ctranslate2", "is_ctranslate2_directory",
           "transformer_spec"]
