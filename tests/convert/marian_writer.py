"""Small random Marian Transformers written in OPUS-MT's published layout and in Hugging Face's.

The names, shapes and options are those of Marian's `.npz` (as CTranslate2's OPUS-MT converter
reads them) and of Hugging Face's `MarianMTModel` state dict; the test checks both imports
against CTranslate2's own conversion of the Marian files.
"""

import io
import json

import numpy as np
import sentencepiece as spm
import yaml

from tests.training.conftest import FIXTURE_TSV

PAIRS = [line.split("\t") for line in FIXTURE_TSV.read_text("utf-8").splitlines()]
LANGUAGE_TOKEN = ">>deu<<"  # a multilingual model's target-language token


def train_spm(texts, size):
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_writer=model,
                                   vocab_size=size, model_type="unigram", character_coverage=1.0,
                                   minloglevel=2)
    return model.getvalue()


def spm_pieces(model):
    processor = spm.SentencePieceProcessor(model_proto=model)
    return [processor.id_to_piece(i) for i in range(processor.get_piece_size())
            if not processor.is_control(i) and not processor.is_unknown(i)]


def vocabularies(source_spm, target_spm, shared):
    """Marian's vocabularies: `</s>` 0, `<unk>` 1, then the pieces (and the language token)."""
    source = ["</s>", "<unk>", LANGUAGE_TOKEN, *spm_pieces(source_spm)]
    target = ["</s>", "<unk>", *spm_pieces(target_spm)]
    if shared:
        source = target = source + [p for p in target[2:] if p not in set(source)]
    return source, target


def random_weights(rng, source_size, target_size, dim=32, ffn=64, layers=(2, 2),
                   shared=True, tied=True, pre_norm=False, gain=2.0):
    """Marian's weights: matrices `(in, out)`, vectors `(1, n)`.

    Scaled so that a random model is not degenerate: projections at `gain` times the
    unit-variance scale make outputs depend on the source (most of 20 sources get outputs of
    their own; with larger gains logits grow and float32 agrees to fewer digits),
    and a long `</s>` row makes the end token win at some steps, so outputs vary in length.
    """
    def matrix(rows, columns, scale=None):
        return rng.normal(0, scale or gain * rows ** -0.5, (rows, columns)).astype(np.float32)

    def vector(n, mean=0.0, scale=0.1):
        return (mean + rng.normal(0, scale, (1, n))).astype(np.float32)

    weights = {}
    if shared:
        weights["Wemb"] = matrix(source_size, dim, 1.0)
    else:
        weights["encoder_Wemb"] = matrix(source_size, dim, 1.0)
        weights["decoder_Wemb"] = matrix(target_size, dim, 1.0)
    weights["Wemb" if shared else "decoder_Wemb"][0] *= 4  # </s>
    if not tied:
        weights["decoder_ff_logit_out_W"] = matrix(dim, target_size, 1.0)
        weights["decoder_ff_logit_out_W"][:, 0] *= 4
    weights["decoder_ff_logit_out_b"] = vector(target_size)
    suffix = "_pre" if pre_norm else ""

    def norm(prefix):
        weights[f"{prefix}_ln_scale{suffix}"] = vector(dim, 1.0)
        weights[f"{prefix}_ln_bias{suffix}"] = vector(dim)

    def attention(scope):
        for p in "qkvo":
            weights[f"{scope}_W{p}"] = matrix(dim, dim)
            weights[f"{scope}_b{p}"] = vector(dim)
        norm(f"{scope}_Wo")

    def feed_forward(scope):
        weights[f"{scope}_W1"], weights[f"{scope}_b1"] = matrix(dim, ffn), vector(ffn)
        weights[f"{scope}_W2"], weights[f"{scope}_b2"] = matrix(ffn, dim), vector(dim)
        norm(f"{scope}_ffn")

    for i in range(1, layers[0] + 1):
        attention(f"encoder_l{i}_self")
        feed_forward(f"encoder_l{i}_ffn")
    for i in range(1, layers[1] + 1):
        attention(f"decoder_l{i}_self")
        attention(f"decoder_l{i}_context")
        feed_forward(f"decoder_l{i}_ffn")
    if pre_norm:
        for side in ("encoder", "decoder"):
            weights[f"{side}_top_ln_scale"] = vector(dim, 1.0)
            weights[f"{side}_top_ln_bias"] = vector(dim)
    return weights


def model_options(dim=32, heads=4, ffn=64, layers=(2, 2), activation="swish", shared=True,
                  tied=True, pre_norm=False, **changes):
    """A model.yml as Marian writes it for an OPUS-MT transformer (post-norm by default)."""
    options = {
        "type": "transformer", "dim-emb": dim, "dim-vocabs": [0, 0],
        "enc-depth": layers[0], "dec-depth": layers[1], "transformer-heads": heads,
        "transformer-dim-ffn": ffn, "transformer-decoder-dim-ffn": 0,
        "transformer-ffn-depth": 2, "transformer-decoder-ffn-depth": 0,
        "transformer-ffn-activation": activation, "transformer-dim-aan": 2048,
        "transformer-aan-depth": 2, "transformer-aan-activation": "swish",
        "transformer-aan-nogate": False, "transformer-decoder-autoreg": "self-attention",
        "transformer-no-projection": False, "transformer-pool": False,
        "transformer-preprocess": "n" if pre_norm else "",
        "transformer-postprocess": "da" if pre_norm else "dan",
        "transformer-postprocess-emb": "d",
        "transformer-postprocess-top": "n" if pre_norm else "",
        "transformer-dropout": 0.1, "transformer-dropout-attention": 0,
        "transformer-dropout-ffn": 0, "transformer-tied-layers": [],
        "transformer-guided-alignment-layer": "last", "transformer-depth-scaling": False,
        "tied-embeddings": tied, "tied-embeddings-src": False,
        "tied-embeddings-all": shared, "output-omit-bias": False, "version": "v1.7.6",
    }
    options.update(changes)
    return options


def write_marian(directory, weights, options, source_vocab, target_vocab, source_spm,
                 target_spm):
    """An OPUS-MT release folder: decoder.yml, the .npz, the vocabulary .yml(s), the .spm."""
    directory.mkdir(parents=True, exist_ok=True)
    options = {**options, "dim-vocabs": [len(source_vocab), len(target_vocab)]}
    text = yaml.safe_dump(options, sort_keys=False).encode("utf-8") + b"\0"
    name = "opus.spm32k-spm32k.transformer-align.model1.npz.best-perplexity.npz"
    np.savez(directory / name, **weights,
             **{"special:model.yml": np.frombuffer(text, dtype=np.int8)})
    shared = source_vocab == target_vocab
    names = (["opus.spm32k-spm32k.vocab.yml"] * 2 if shared
             else ["opus.spm32k-spm32k.src.vocab.yml", "opus.spm32k-spm32k.trg.vocab.yml"])
    for vocab, file in zip((source_vocab, target_vocab), names):
        (directory / file).write_text(yaml.safe_dump(
            {piece: i for i, piece in enumerate(vocab)}, allow_unicode=True, sort_keys=False),
            "utf-8")
    (directory / "decoder.yml").write_text(yaml.safe_dump(
        {"models": [name], "vocabs": names, "beam-size": 6, "normalize": 0.6,
         "word-penalty": 0, "mini-batch": 16, "maxi-batch": 100, "maxi-batch-sort": "src"}))
    (directory / "source.spm").write_bytes(source_spm)
    (directory / "target.spm").write_bytes(target_spm)
    return directory


def write_huggingface(directory, weights, options, source_vocab, target_vocab, source_spm,
                      target_spm):
    """The same model as Hugging Face's converter writes it: `<pad>` appended to each
    vocabulary with a zero row (and a zero logit bias), the decoder starting from it."""
    from safetensors.numpy import save_file

    directory.mkdir(parents=True, exist_ok=True)
    pad_row = lambda m: np.concatenate([m, np.zeros((1, m.shape[1]), np.float32)])  # noqa: E731
    tensors = {}
    separate = source_vocab != target_vocab
    if "Wemb" in weights:
        tensors["model.shared.weight"] = pad_row(weights["Wemb"])
    else:
        tensors["model.encoder.embed_tokens.weight"] = pad_row(weights["encoder_Wemb"])
        tensors["model.decoder.embed_tokens.weight"] = pad_row(weights["decoder_Wemb"])
    if "decoder_ff_logit_out_W" in weights:
        tensors["lm_head.weight"] = pad_row(weights["decoder_ff_logit_out_W"].T)
    bias = weights["decoder_ff_logit_out_b"]
    tensors["final_logits_bias"] = np.concatenate([bias, np.zeros((1, 1), np.float32)], 1)
    hf_parts = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "out_proj"}
    for name, value in weights.items():
        if not name.startswith(("encoder_l", "decoder_l")):
            continue
        side, rest = name.split("_", 1)
        layer, scope, item = rest.split("_", 2)
        prefix = f"model.{side}.layers.{int(layer[1:]) - 1}"
        if scope in ("self", "context"):
            module = "self_attn" if scope == "self" else "encoder_attn"
            if item.startswith("Wo_ln_"):
                key = f"{prefix}.{module}_layer_norm.{'weight' if 'scale' in item else 'bias'}"
            else:
                kind = "weight" if item[0] == "W" else "bias"
                key = f"{prefix}.{module}.{hf_parts[item[1]]}.{kind}"
        elif item.startswith("ffn_ln_"):
            key = f"{prefix}.final_layer_norm.{'weight' if 'scale' in item else 'bias'}"
        else:
            key = f"{prefix}.fc{item[1]}.{'weight' if item[0] == 'W' else 'bias'}"
        tensors[key] = value.T if item[0] == "W" and "ln" not in item else value.reshape(-1)
    save_file({name: np.ascontiguousarray(value) for name, value in tensors.items()},
              str(directory / "model.safetensors"))
    size = lambda vocab: len(vocab) + 1  # noqa: E731
    config = {
        "model_type": "marian", "architectures": ["MarianMTModel"],
        "d_model": options["dim-emb"], "encoder_layers": options["enc-depth"],
        "decoder_layers": options["dec-depth"],
        "encoder_attention_heads": options["transformer-heads"],
        "decoder_attention_heads": options["transformer-heads"],
        "encoder_ffn_dim": options["transformer-dim-ffn"],
        "decoder_ffn_dim": options["transformer-dim-ffn"],
        "activation_function": options["transformer-ffn-activation"],
        "vocab_size": size(source_vocab), "decoder_vocab_size": size(target_vocab),
        "pad_token_id": len(target_vocab), "decoder_start_token_id": len(target_vocab),
        "eos_token_id": 0, "scale_embedding": True, "static_position_embeddings": True,
        "share_encoder_decoder_embeddings": not separate, "max_position_embeddings": 512,
        "dropout": 0.1, "attention_dropout": 0.0, "activation_dropout": 0.0, "num_beams": 4,
    }
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    vocab_json = lambda vocab: json.dumps(  # noqa: E731
        {**{p: i for i, p in enumerate(vocab)}, "<pad>": len(vocab)}, ensure_ascii=False)
    (directory / "vocab.json").write_text(vocab_json(source_vocab), "utf-8")
    if separate:
        (directory / "target_vocab.json").write_text(vocab_json(target_vocab), "utf-8")
    (directory / "source.spm").write_bytes(source_spm)
    (directory / "target.spm").write_bytes(target_spm)
    return directory
