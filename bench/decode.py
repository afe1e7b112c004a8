"""Decoding speed: our cached beam search against the tutorial's loop and keras-hub's sampler.

All three decode the "small" size with random weights, beam 4, batch 32, exactly 40 target
tokens (the end token is suppressed), each inside one `tf.function`:

(a) ours: `BeamSearch` over `Transformer.next` (fixed-shape self-attention cache, cross-attention
    keys/values computed once per source);
(b) the TensorFlow tutorial "Neural machine translation with a Transformer and Keras": its decode
    step runs the whole model over the whole prefix at every step (no cache). Written here as
    that step, driven by the same beam search, so the comparison isolates the cache;
(c) keras-hub: a same-size model built from keras-hub's TokenAndPositionEmbedding,
    TransformerEncoder and TransformerDecoder (with their self- and cross-attention caches),
    driven by `keras_hub.samplers.BeamSampler`.

Systems alternate in rounds in one process. Ends with one JSON line.

    python bench/decode.py [--xla]

Everything here is keras.ops, so it also runs under Keras's JAX backend (KERAS_BACKEND=jax), where
each system is one `jax.jit` (always XLA).
"""

import argparse
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from seq2seq.decoding import BeamSearch, generate  # noqa: E402
from seq2seq.models import SIZES, Transformer  # noqa: E402

VOCABULARY, SOURCE_LENGTH, OUTPUT_TOKENS = 8000, 40, 40


def ours(model, beam):
    search = BeamSearch(beam_size=beam, alpha=0.6, min_length=OUTPUT_TOKENS)

    def run(source):
        return generate(model, source, search, max_length=OUTPUT_TOKENS + 1).tokens

    return run


def tutorial(model, beam):
    """The tutorial's step: the full model over the whole (padded) prefix, every step."""
    search = BeamSearch(beam_size=beam, alpha=0.6, min_length=OUTPUT_TOKENS)

    def next_fn(prompt, cache, index):
        logits = model((cache["source"], prompt))
        return ops.take(logits, index - 1, axis=1), None, cache

    def run(source):
        cache = {"source": source}
        return search(next_fn, cache, ops.shape(source)[0], OUTPUT_TOKENS + 1).tokens

    return run


class KerasHubSeq2Seq:
    """The keras-io / keras-hub encoder-decoder, with keras-hub's decoder caches."""

    def __init__(self, size):
        c = SIZES[size]
        self.layers, self.heads = c["num_decoder_layers"], c["num_heads"]
        self.head_dim = c["hidden_dim"] // c["num_heads"]
        self.source_embedding = keras_hub.layers.TokenAndPositionEmbedding(
            VOCABULARY, 128, c["hidden_dim"], mask_zero=True)
        self.target_embedding = keras_hub.layers.TokenAndPositionEmbedding(
            VOCABULARY, 128, c["hidden_dim"], mask_zero=True)
        self.encoders = [keras_hub.layers.TransformerEncoder(c["intermediate_dim"], self.heads)
                         for _ in range(c["num_encoder_layers"])]
        self.decoders = [keras_hub.layers.TransformerDecoder(c["intermediate_dim"], self.heads)
                         for _ in range(self.layers)]
        self.output = keras.layers.Dense(VOCABULARY)

    def encode(self, source):
        x = self.source_embedding(source)
        for layer in self.encoders:
            x = layer(x, padding_mask=source != 0)
        return x

    def init_cache(self, source, max_length):
        encoded = self.encode(source)
        batch = ops.shape(source)[0]
        self_cache = ops.zeros((batch, self.layers, 2, max_length, self.heads, self.head_dim))
        cross = []
        token = ops.ones((batch, 1), "int32")
        x = self.target_embedding(token)
        for i, layer in enumerate(self.decoders):  # fills each cross-attention cache once
            empty = ops.zeros((batch, 2, ops.shape(source)[1], self.heads, self.head_dim))
            _, _, cross_cache = layer(
                x, encoded, encoder_padding_mask=source != 0,
                self_attention_cache=self_cache[:, i], self_attention_cache_update_index=0,
                cross_attention_cache=empty, cross_attention_cache_update_index=0)
            cross.append(cross_cache)
        return {"self": self_cache, "cross": ops.stack(cross, axis=1), "mask": source != 0,
                "encoded": encoded}

    def next(self, prompt, cache, index):
        batch = ops.shape(prompt)[0]
        token = ops.slice(prompt, [0, index - 1], [batch, 1])
        x = self.target_embedding.token_embedding(token)
        x = x + self.target_embedding.position_embedding(x, start_index=index - 1)
        caches = []
        for i, layer in enumerate(self.decoders):
            # keras-hub wants the encoder output with a cross-attention cache too (as its
            # BART does); with cross_attention_cache_update_index=None it reads the cache.
            x, self_cache, _ = layer(
                x, cache["encoded"], encoder_padding_mask=cache["mask"],
                self_attention_cache=cache["self"][:, i],
                self_attention_cache_update_index=index - 1,
                cross_attention_cache=cache["cross"][:, i],
                cross_attention_cache_update_index=None)
            caches.append(self_cache)
        logits = self.output(x)[:, 0]
        return logits, x[:, 0], {**cache, "self": ops.stack(caches, axis=1)}


def keras_hub_beam(model, beam):
    sampler = keras_hub.samplers.BeamSampler(num_beams=beam)

    def run(source):
        batch = ops.shape(source)[0]
        prompt = ops.concatenate(
            [ops.ones((batch, 1), "int32"), ops.zeros((batch, OUTPUT_TOKENS), "int32")], 1)
        cache = model.init_cache(source, OUTPUT_TOKENS + 1)
        return sampler(model.next, prompt, cache=cache, index=1)

    return run


def compile_search(function, xla):
    """One compiled graph per system: a tf.function (XLA on request) or a jax.jit."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(function)
    import tensorflow as tf

    return tf.function(function, jit_compile=xla, reduce_retracing=True)


def timed(function, source, repeats):
    function(source)  # trace and warm up
    start = time.perf_counter()
    for _ in range(repeats):
        out = function(source)
    np.asarray(out)
    return (time.perf_counter() - start) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="small")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--xla", action="store_true")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    batch = rng.integers(3, VOCABULARY, (args.batch, SOURCE_LENGTH)).astype("int32")
    single = batch[:1]
    model = Transformer.from_size(args.size, source_vocabulary_size=VOCABULARY,
                                  target_vocabulary_size=VOCABULARY, max_length=128)
    model((batch[:, :4], batch[:, :4]))
    peer = KerasHubSeq2Seq(args.size)
    # Build the peer's layers outside any trace (jax.jit must not create variables).
    peer.next(np.ones((1, 2), "int32"), peer.init_cache(batch[:1, :4], 2), 1)
    systems = {
        "ours": ours(model, args.beam),
        "tutorial": tutorial(model, args.beam),
        "kerashub": keras_hub_beam(peer, args.beam),
    }
    compiled = {name: compile_search(fn, args.xla) for name, fn in systems.items()}
    batch_seconds = {name: 0.0 for name in systems}
    single_seconds = {name: 0.0 for name in systems}
    for _ in range(args.rounds):
        for name, function in compiled.items():
            batch_seconds[name] += timed(function, batch, 1)
            single_seconds[name] += timed(function, single, 2)
    tok_s = {n: args.rounds * args.batch * OUTPUT_TOKENS / s for n, s in batch_seconds.items()}
    latency = {n: 1000 * s / args.rounds for n, s in single_seconds.items()}
    print(json.dumps({
        "machine": f"{os.cpu_count()} cores", "backend": keras.backend.backend(),
        "size": args.size, "beam": args.beam,
        "batch": args.batch, "xla": args.xla or keras.backend.backend() == "jax",
        "ours_tok_s": round(tok_s["ours"], 1),
        "tutorial_tok_s": round(tok_s["tutorial"], 1),
        "kerashub_tok_s": round(tok_s["kerashub"], 1),
        "ratio_vs_tutorial": round(tok_s["ours"] / tok_s["tutorial"], 2),
        "ratio_vs_kerashub": round(tok_s["ours"] / tok_s["kerashub"], 2),
        "ours_latency_ms": round(latency["ours"], 1),
        "tutorial_latency_ms": round(latency["tutorial"], 1),
        "kerashub_latency_ms": round(latency["kerashub"], 1),
    }))


if __name__ == "__main__":
    main()
