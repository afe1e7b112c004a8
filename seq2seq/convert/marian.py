"""OPUS-MT (Marian) Transformers imported as run directories: `import_marian(model_dir, run_dir)`.

Two layouts of a checkpoint are read:

- Marian's own, as OPUS-MT publishes a release: `decoder.yml` names the weights (`.npz`, whose
  `special:model.yml` holds the options they were trained with) and the vocabularies (`.yml`,
  piece: id); `source.spm` and `target.spm` segment the text.
- Hugging Face's Marian folder: `config.json`, `model.safetensors` (read with the safetensors
  package's numpy API, no torch), `vocab.json` (and `target_vocab.json` where the vocabularies
  are separate), `source.spm`, `target.spm`.

Both are read into Marian's names and layout (`MarianCheckpoint`; Hugging Face's `(out, in)`
matrices transposed), and one mapping writes those into a `Transformer`: post-norm ("dan") or
pre-norm layers, relu or swish, Marian's [sin | cos] sinusoids from position 0, embeddings
scaled by sqrt(dim), a bias on the logits, shared or separate tables. A Marian option this
model cannot reproduce is refused by name (`MarianOptionError`), never approximated.

Marian's vocabulary has `</s>` (id 0) and `<unk>` (id 1) and no start token: its decoder starts
from a zero embedding (Hugging Face's from the row of its added `<pad>`). The import permutes the
embedding rows and the logits bias onto this toolkit's fixed special ids (pad 0, start 1, end 2,
unknown 3, then Marian's pieces in their order); the start row is the decoder's start row, and
pad and start get a logit bias of `NEVER_LOGIT`, so that they take no probability (Marian has no
such outputs). The run's tokenizers are the SentencePiece models with that vocabulary as their
id table (`seq2seq.text.tokenizer`). tests/convert/test_marian.py checks the import against
CTranslate2's own OPUS-MT converter, token for token.
"""

import dataclasses
import json
import pathlib
import shutil

import keras
import numpy as np
import yaml

from seq2seq import config as config_lib
from seq2seq.models import SIZES, build_model
from seq2seq.text.tokenizer import END_ID, PAD_ID, START_ID, UNK_ID, Tokenizer
from seq2seq.training.checkpoints import Checkpoints

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")  # the vocabulary's first four, by their ids
# The logit bias of pad and start, which Marian's model never outputs: finite, so that label
# smoothing in a fine-tune (which spreads target mass over every id) keeps a finite loss, and
# low enough that their probability (e ** -100 of the others') changes no log-probability.
NEVER_LOGIT = -100.0
LAYOUTS = {"marian": ("decoder.yml",), "huggingface": ("config.json", "model.safetensors")}


class MarianOptionError(ValueError):
    """A checkpoint trained with an option this model cannot reproduce."""


@dataclasses.dataclass
class MarianCheckpoint:
    """A Marian Transformer in Marian's names and layout, whatever file layout it came from."""

    options: dict  # enc-depth, dec-depth, dim-emb, transformer-heads, ... (Marian's names)
    weights: dict  # Marian's names -> float32 arrays (matrices (in, out), vectors (1, n))
    source_vocabulary: list  # pieces by Marian id
    target_vocabulary: list
    source_spm: bytes
    target_spm: bytes
    start_row: object = None  # the target row the decoder starts from; None: a zero vector
    beam_size: int = 4


# Marian options read, with Marian's default where a model.yml may omit them.
_DEFAULTS = {
    "type": "transformer", "transformer-decoder-autoreg": "self-attention",
    "transformer-ffn-activation": "swish", "transformer-ffn-depth": 2,
    "transformer-decoder-ffn-depth": 0, "transformer-decoder-dim-ffn": 0,
    "transformer-preprocess": "", "transformer-postprocess": "dan",
    "transformer-postprocess-emb": "d", "transformer-postprocess-top": "",
    "transformer-depth-scaling": False, "transformer-no-projection": False,
    "transformer-tied-layers": [], "transformer-dropout": 0.0,
    "transformer-dropout-attention": 0.0, "transformer-dropout-ffn": 0.0,
    "scale-embeddings": True,  # not Marian's (it always scales): Hugging Face's scale_embedding
}
_NORMS = {("", "dan", ""): False, ("n", "da", "n"): True}  # (pre, post, top) -> pre-norm


def check_options(options, where):
    """Raises `MarianOptionError` naming the first option of `options` (Marian's) that the
    model cannot reproduce; returns the options with Marian's defaults filled in."""
    options = {**_DEFAULTS, **options}

    def refuse(name, expected):
        raise MarianOptionError(f"{where}: Marian option {name}={options.get(name)!r} is not "
                                f"supported; expected {expected}.")

    for name, allowed in (("type", ("transformer",)),
                          ("transformer-decoder-autoreg", ("self-attention",)),
                          ("transformer-ffn-activation", ("relu", "swish")),
                          ("transformer-postprocess-emb", ("d", "")),
                          ("transformer-ffn-depth", (2,)),
                          ("transformer-decoder-ffn-depth", (0, 2)),
                          ("transformer-depth-scaling", (False,)),
                          ("transformer-no-projection", (False,))):
        if options[name] not in allowed:
            refuse(name, " or ".join(repr(a) for a in allowed))
    if options["transformer-tied-layers"]:
        refuse("transformer-tied-layers", "[] (no layers shared)")
    norms = tuple(options[f"transformer-{k}"] for k in ("preprocess", "postprocess",
                                                         "postprocess-top"))
    if norms not in _NORMS:
        raise MarianOptionError(
            f"{where}: Marian options transformer-preprocess/-postprocess/-postprocess-top="
            f"{norms!r} are not supported; expected ('', 'dan', '') (post-norm) or "
            "('n', 'da', 'n') (pre-norm).")
    if options["transformer-decoder-dim-ffn"] not in (0, options["transformer-dim-ffn"]):
        refuse("transformer-decoder-dim-ffn",
               f"0 or the encoder's transformer-dim-ffn={options['transformer-dim-ffn']}")
    if options["dim-emb"] % options["transformer-heads"]:
        refuse("transformer-heads", f"a divisor of dim-emb={options['dim-emb']}")
    return options


def read_vocabulary_yml(path):
    """Marian's vocabulary `.yml` (piece: id) as the pieces by id."""
    loader = getattr(yaml, "CBaseLoader", yaml.BaseLoader)  # every key and id as text
    with open(path, encoding="utf-8") as file:
        mapping = yaml.load(file, Loader=loader)
    return _by_id({piece: int(index) for piece, index in mapping.items()}, path)


def _by_id(mapping, where):
    pieces = [None] * len(mapping)
    for piece, index in mapping.items():
        if not 0 <= index < len(pieces) or pieces[index] is not None:
            raise ValueError(f"{where}: ids are not 0..{len(pieces) - 1}, each once "
                             f"({piece!r} has id {index}); expected a Marian vocabulary.")
        pieces[index] = piece
    return pieces


def read_marian(model_dir):
    """A `MarianCheckpoint` from a Marian/OPUS-MT release folder (`decoder.yml`, `.npz`,
    vocabulary `.yml`, `source.spm`, `target.spm`)."""
    model_dir = pathlib.Path(model_dir)
    decoder = yaml.safe_load((model_dir / "decoder.yml").read_text("utf-8")) or {}
    if not decoder.get("models") or not decoder.get("vocabs"):
        raise ValueError(f"{model_dir / 'decoder.yml'} names no models and vocabs; expected "
                         "Marian's decoder settings (models: [X.npz], vocabs: [S.yml, T.yml]).")
    if len(decoder["models"]) > 1:
        raise MarianOptionError(f"{model_dir / 'decoder.yml'} is an ensemble of "
                                f"{len(decoder['models'])} models; expected one.")
    path = model_dir / decoder["models"][0]
    with np.load(path) as npz:
        if "special:model.yml" not in npz.files:
            raise ValueError(f"{path} has no special:model.yml; expected a Marian model .npz.")
        options = yaml.safe_load(npz["special:model.yml"][:-1].tobytes())  # NUL-terminated
        weights = {name: np.asarray(npz[name], np.float32) for name in npz.files
                   if not name.startswith("special:")}
    vocabs = [read_vocabulary_yml(model_dir / name) for name in decoder["vocabs"]]
    return MarianCheckpoint(
        options=check_options(options, str(path)), weights=weights,
        source_vocabulary=vocabs[0], target_vocabulary=vocabs[-1],
        source_spm=_read(model_dir, "source.spm"), target_spm=_read(model_dir, "target.spm"),
        beam_size=int(decoder.get("beam-size", 4)))


def _read(model_dir, name):
    path = pathlib.Path(model_dir) / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; an OPUS-MT model segments its text with "
                                "source.spm and target.spm (SentencePiece models).")
    return path.read_bytes()


# Hugging Face's parameter names (after "model.") -> Marian's, per layer and sublayer.
_HF_ATTENTION = {"q_proj": "q", "k_proj": "k", "v_proj": "v", "out_proj": "o"}
_HF_SUBLAYERS = {"self_attn": "self", "encoder_attn": "context"}
_HF_ACTIVATIONS = {"relu": "relu", "swish": "swish", "silu": "swish"}


def _marian_name(name):
    """Hugging Face name (without "model.") -> (Marian name, transpose), or None to skip."""
    parts = name.split(".")
    if parts[0] in ("encoder", "decoder") and parts[1] == "layers":
        scope = f"{parts[0]}_l{int(parts[2]) + 1}"
        sublayer, rest = parts[3], parts[4:]
        if sublayer in _HF_SUBLAYERS:  # self_attn.q_proj.weight
            kind = "W" if rest[1] == "weight" else "b"
            return f"{scope}_{_HF_SUBLAYERS[sublayer]}_{kind}{_HF_ATTENTION[rest[0]]}", kind == "W"
        if sublayer.endswith("_layer_norm"):  # self_attn_layer_norm.weight
            owner = sublayer[: -len("_layer_norm")]
            prefix = (f"{scope}_ffn_ffn" if owner == "final"
                      else f"{scope}_{_HF_SUBLAYERS[owner]}_Wo")
            return f"{prefix}_ln_{'scale' if rest[0] == 'weight' else 'bias'}", False
        if sublayer in ("fc1", "fc2"):
            kind = "W" if rest[0] == "weight" else "b"
            return f"{scope}_ffn_{kind}{sublayer[-1]}", kind == "W"
    if name == "shared.weight":
        return "Wemb", False
    if name in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
        return f"{parts[0]}_Wemb", False
    if name == "lm_head.weight":
        return "decoder_ff_logit_out_W", True
    if name == "final_logits_bias":
        return "decoder_ff_logit_out_b", False
    if name.endswith("embed_positions.weight"):  # recomputed (sinusoids)
        return None
    raise MarianOptionError(f"model.safetensors: parameter {name!r} has no Marian "
                            "counterpart; expected a MarianMTModel's parameters.")


def read_huggingface(model_dir):
    """A `MarianCheckpoint` from a Hugging Face Marian folder (`config.json`,
    `model.safetensors`, `vocab.json` [, `target_vocab.json`], `source.spm`, `target.spm`)."""
    try:
        from safetensors.numpy import load_file
    except ImportError as error:
        raise ImportError("Reading model.safetensors needs the safetensors package: "
                          "pip install safetensors.") from error
    model_dir = pathlib.Path(model_dir)
    where = str(model_dir / "config.json")
    hf = json.loads((model_dir / "config.json").read_text("utf-8"))
    if hf.get("model_type") != "marian":
        raise MarianOptionError(f"{where}: model_type={hf.get('model_type')!r}; expected "
                                "'marian'.")
    for name, expected in (("decoder_attention_heads", hf["encoder_attention_heads"]),
                           ("decoder_ffn_dim", hf["encoder_ffn_dim"]),
                           ("normalize_before", False), ("normalize_embedding", False),
                           ("add_final_layer_norm", False)):
        if hf.get(name, expected) != expected:
            raise MarianOptionError(f"{where}: {name}={hf[name]!r} is not supported; "
                                    f"expected {expected!r}.")
    if hf.get("activation_function", "swish") not in _HF_ACTIVATIONS:
        raise MarianOptionError(f"{where}: activation_function={hf['activation_function']!r} "
                                f"is not supported; expected one of {', '.join(_HF_ACTIVATIONS)}.")
    options = {
        "enc-depth": hf["encoder_layers"], "dec-depth": hf["decoder_layers"],
        "dim-emb": hf["d_model"], "transformer-heads": hf["encoder_attention_heads"],
        "transformer-dim-ffn": hf["encoder_ffn_dim"],
        "transformer-ffn-activation": _HF_ACTIVATIONS[hf.get("activation_function", "swish")],
        "transformer-dropout": hf.get("dropout", 0.1),
        "transformer-dropout-attention": hf.get("attention_dropout", 0.0),
        "transformer-dropout-ffn": hf.get("activation_dropout", 0.0),
        "scale-embeddings": hf.get("scale_embedding", True),
    }
    weights = {}
    for name, value in load_file(str(model_dir / "model.safetensors")).items():
        marian = _marian_name(name.removeprefix("model."))
        if marian is not None:
            value = np.asarray(value, np.float32)
            weights[marian[0]] = value.T if marian[1] else (
                value[None] if value.ndim == 1 else value)
    if "decoder_ff_logit_out_W" in weights:  # stored, but tied (the same matrix)?
        table = weights.get("decoder_Wemb", weights.get("Wemb"))
        if table is not None and np.array_equal(weights["decoder_ff_logit_out_W"], table.T):
            del weights["decoder_ff_logit_out_W"]
    if "Wemb" not in weights and "encoder_Wemb" in weights and "decoder_Wemb" in weights and (
            np.array_equal(weights["encoder_Wemb"], weights["decoder_Wemb"])):
        weights["Wemb"] = weights.pop("encoder_Wemb")
        del weights["decoder_Wemb"]
    source = _by_id(json.loads((model_dir / "vocab.json").read_text("utf-8")),
                    model_dir / "vocab.json")
    target_file = model_dir / "target_vocab.json"
    target = (_by_id(json.loads(target_file.read_text("utf-8")), target_file)
              if target_file.exists() else source)
    return MarianCheckpoint(
        options=check_options(options, where), weights=weights, source_vocabulary=source,
        target_vocabulary=target, source_spm=_read(model_dir, "source.spm"),
        target_spm=_read(model_dir, "target.spm"),
        start_row=hf.get("decoder_start_token_id", hf.get("pad_token_id")),
        beam_size=int(hf.get("num_beams", 4)))


def read_checkpoint(model_dir):
    """A `MarianCheckpoint` from either layout (`LAYOUTS`)."""
    model_dir = pathlib.Path(model_dir)
    if (model_dir / "decoder.yml").is_file():
        return read_marian(model_dir)
    if all((model_dir / name).is_file() for name in LAYOUTS["huggingface"]):
        return read_huggingface(model_dir)
    raise FileNotFoundError(
        f"{model_dir} holds no Marian checkpoint; expected an OPUS-MT release (decoder.yml, "
        "the .npz it names, its vocabulary .yml, source.spm, target.spm) or a Hugging Face "
        "Marian folder (config.json, model.safetensors, vocab.json, source.spm, target.spm).")


def vocabulary_order(pieces, start_row=None):
    """`(tokens, rows)`: the toolkit's vocabulary (`SPECIALS`, then Marian's other pieces in
    their order) and, for each of its ids, the Marian row it takes (None: a zero row)."""
    index = {piece: i for i, piece in enumerate(pieces)}
    missing = [piece for piece in ("</s>", "<unk>") if piece not in index]
    if missing:
        raise ValueError(f"the Marian vocabulary has no {missing[0]!r}; expected </s> and <unk>.")
    rows = [None] * len(SPECIALS)
    rows[PAD_ID], rows[START_ID] = index.get("<pad>"), start_row
    rows[END_ID], rows[UNK_ID] = index["</s>"], index["<unk>"]
    rest = [i for i, piece in enumerate(pieces) if piece not in ("</s>", "<unk>", "<pad>")]
    return list(SPECIALS) + [pieces[i] for i in rest], rows + rest


def _gather(matrix, rows, axis=0):
    """`matrix` rows (columns with `axis=1`) in the order `rows`, zeros where None."""
    matrix = np.moveaxis(matrix, axis, 0)
    out = np.zeros((len(rows), *matrix.shape[1:]), np.float32)
    for i, row in enumerate(rows):
        if row is not None:
            out[i] = matrix[row]
    return np.moveaxis(out, 0, axis)


def _model_config(checkpoint, shared, tied, max_length):
    options = checkpoint.options
    dims = dict(num_encoder_layers=options["enc-depth"], num_decoder_layers=options["dec-depth"],
                hidden_dim=options["dim-emb"], num_heads=options["transformer-heads"],
                intermediate_dim=options["transformer-dim-ffn"])
    size = next((name for name, values in SIZES.items() if values == dims), "base")
    return config_lib.ModelConfig(
        size=size, **dims, dropout=float(options["transformer-dropout"]),
        attention_dropout=float(options["transformer-dropout-attention"]),
        activation_dropout=float(options["transformer-dropout-ffn"]),
        activation=options["transformer-ffn-activation"],
        norm_first=_NORMS[(options["transformer-preprocess"], options["transformer-postprocess"],
                           options["transformer-postprocess-top"])],
        position_embedding="sinusoidal_halves", max_length=max_length, share_embeddings=shared,
        tie_output=tied, scale_embeddings=bool(options["scale-embeddings"]),
        output_bias=True)


def _sentencepiece_type(model):
    import sentencepiece.sentencepiece_model_pb2 as model_pb2

    proto = model_pb2.ModelProto()
    proto.ParseFromString(model)
    return "bpe" if proto.trainer_spec.model_type == model_pb2.TrainerSpec.BPE else "unigram"


def build(checkpoint, max_length=256, source_prefix=None):
    """`(config, model, source_tokenizer, target_tokenizer)` of a `MarianCheckpoint`: a float32
    `Transformer` holding its weights, permuted onto the toolkit's special ids."""
    weights = dict(checkpoint.weights)
    shared = "Wemb" in weights
    source_table = weights.pop("Wemb") if shared else weights.pop("encoder_Wemb")
    target_table = source_table if shared else weights.pop("decoder_Wemb")
    output = weights.pop("decoder_ff_logit_out_W", None)  # absent: tied to the target table
    bias = weights.pop("decoder_ff_logit_out_b", np.zeros((1, len(target_table)), np.float32))
    source_tokens, source_rows = vocabulary_order(checkpoint.source_vocabulary)
    target_tokens, target_rows = vocabulary_order(checkpoint.target_vocabulary,
                                                  checkpoint.start_row)
    for table, pieces, side in ((source_table, checkpoint.source_vocabulary, "source"),
                                (target_table, checkpoint.target_vocabulary, "target")):
        if len(table) != len(pieces):
            raise ValueError(f"the {side} embedding has {len(table)} rows but the {side} "
                             f"vocabulary {len(pieces)} pieces; expected one row a piece.")
    joint = source_tokens == target_tokens
    if shared and not joint:
        raise ValueError("the model shares one embedding table but its source and target "
                         "vocabularies differ; expected one vocabulary.")
    config = config_lib.Config(
        model=_model_config(checkpoint, shared, output is None, max_length),
        data=config_lib.DataConfig(
            dataset=None, tokenizer="sentencepiece",
            sentencepiece_model_type=_sentencepiece_type(checkpoint.target_spm),
            vocabulary_size=len(target_tokens), joint_vocabulary=joint,
            source_prefix=source_prefix),
        training=config_lib.TrainingConfig(precision="auto"),
        decoding=config_lib.DecodingConfig(beam_size=checkpoint.beam_size))
    config_lib.check(config, "the imported config")
    source = Tokenizer("sentencepiece", checkpoint.source_spm, source_tokens)
    target = Tokenizer("sentencepiece", checkpoint.target_spm, target_tokens)
    source_with_prefix = source.with_source_prefix(source_prefix)  # its tokens exist?

    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        model = build_model(config.model, len(source_tokens), len(target_tokens))
        dummy = np.ones((1, 2), "int32")
        model((dummy, dummy))
    finally:
        keras.config.set_dtype_policy(policy)
    target_bias = _gather(bias[0], target_rows)
    target_bias[[PAD_ID, START_ID]] = NEVER_LOGIT
    _set(model.target_embedding.token_embedding.embeddings, _gather(target_table, target_rows),
         "decoder_Wemb")
    if not shared:
        _set(model.source_embedding.token_embedding.embeddings,
             _gather(source_table, source_rows), "encoder_Wemb")
    if output is not None:
        _set(model.target_embedding.token_embedding.reverse_embeddings,
             _gather(output, target_rows, axis=1), "decoder_ff_logit_out_W")
    _set(model.target_embedding.logits_bias, target_bias, "decoder_ff_logit_out_b")
    suffix = "_pre" if model.norm_first else ""
    take = _Taker(weights)
    for i, layer in enumerate(model.encoder_layers, 1):
        _attention(take, f"encoder_l{i}_self", layer.self_attention, layer.self_attention_norm,
                   suffix)
        _feed_forward(take, f"encoder_l{i}_ffn", layer, suffix)
    for i, layer in enumerate(model.decoder_layers, 1):
        _attention(take, f"decoder_l{i}_self", layer.self_attention, layer.self_attention_norm,
                   suffix)
        _attention(take, f"decoder_l{i}_context", layer.cross_attention,
                   layer.cross_attention_norm, suffix)
        _feed_forward(take, f"decoder_l{i}_ffn", layer, suffix)
    if model.norm_first:
        for side, norm in (("encoder", model.encoder_norm), ("decoder", model.decoder_norm)):
            _norm(take, f"{side}_top", norm, "")
    unused = sorted(set(weights) - take.used)
    if unused:
        raise MarianOptionError(f"the checkpoint has weights the model has no place for "
                                f"({', '.join(unused[:3])}); expected a plain Transformer.")
    return config, model, source_with_prefix, target


class _Taker:
    """Reads Marian weights by name, remembering which were read."""

    def __init__(self, weights):
        self.weights, self.used = weights, set()

    def __call__(self, name):
        if name not in self.weights:
            raise MarianOptionError(f"the checkpoint has no weight {name!r}; expected the "
                                    "weights of a Marian Transformer of its model.yml.")
        self.used.add(name)
        return self.weights[name]


def _set(variable, value, name):
    value = np.asarray(value, np.float32)
    if value.ndim == 2 and value.shape[0] == 1 and len(variable.shape) == 1:
        value = value[0]  # Marian's vectors are (1, n)
    if tuple(value.shape) != tuple(variable.shape):
        raise ValueError(f"Marian weight {name} has shape {np.shape(value)}; expected "
                         f"{tuple(variable.shape)} for {variable.path}.")
    variable.assign(value)


def _dense(take, dense, weight_names, bias_names):
    kernel = np.concatenate([take(name) for name in weight_names], axis=1)
    bias = np.concatenate([take(name).reshape(-1) for name in bias_names])
    _set(dense.kernel, kernel, weight_names[0])
    _set(dense.bias, bias, bias_names[0])


def _norm(take, prefix, norm, suffix):
    _set(norm.gamma, take(f"{prefix}_ln_scale{suffix}"), f"{prefix}_ln_scale{suffix}")
    _set(norm.beta, take(f"{prefix}_ln_bias{suffix}"), f"{prefix}_ln_bias{suffix}")


def _attention(take, scope, attention, norm, suffix):
    """Marian's `{scope}_W{q,k,v,o}` (and biases) into the fused projections: `[q | k | v]`
    (self-attention) or `q` and `[k | v]` (cross-attention), heads-major columns in each."""
    names = [f"{scope}_W{p}" for p in "qkv"], [f"{scope}_b{p}" for p in "qkv"]
    if attention.self_attention:
        _dense(take, attention.query_key_value_dense, *names)
    else:
        _dense(take, attention.query_dense, names[0][:1], names[1][:1])
        _dense(take, attention.key_value_dense, names[0][1:], names[1][1:])
    _dense(take, attention.output_dense, [f"{scope}_Wo"], [f"{scope}_bo"])
    _norm(take, f"{scope}_Wo", norm, suffix)


def _feed_forward(take, scope, layer, suffix):
    _dense(take, layer.feed_forward.intermediate_dense, [f"{scope}_W1"], [f"{scope}_b1"])
    _dense(take, layer.feed_forward.output_dense, [f"{scope}_W2"], [f"{scope}_b2"])
    _norm(take, f"{scope}_ffn", layer.feed_forward_norm, suffix)


def import_marian(model_dir, run_dir, max_length=256, source_prefix=None):
    """Writes the run directory of a Marian/OPUS-MT checkpoint (either layout): config.yaml,
    tokenizer/ and checkpoints/, which every command opens like a trained run's.

    Args:
        model_dir: the checkpoint's folder.
        run_dir: the run directory to write; it must not exist (nothing is overwritten). It is
            written next to it and renamed into place when complete.
        max_length: `model.max_length`, the longest source or output in tokens.
        source_prefix: `data.source_prefix`, e.g. ">>deu<<" for a multilingual model.

    Returns:
        The run directory's path.
    """
    run_dir = pathlib.Path(run_dir)
    if run_dir.exists():
        raise ValueError(f"{run_dir} exists; expected a new run directory for the "
                              "imported model (nothing is overwritten).")
    config, model, source, target = build(read_checkpoint(model_dir), max_length,
                                          source_prefix)
    partial = run_dir.with_name(run_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    source.save(partial / "tokenizer" / "source")
    target.save(partial / "tokenizer" / "target")
    Checkpoints(partial, model).save(0)
    config_lib.save(config, partial / "config.yaml")
    partial.rename(run_dir)
    return run_dir
