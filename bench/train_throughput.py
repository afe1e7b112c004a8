"""Training throughput: our Transformer against the same-size keras-hub model of keras-io.

The peer is built as the keras-io example "English-to-Spanish translation with KerasHub" builds
it (TokenAndPositionEmbedding with mask_zero, TransformerEncoder/TransformerDecoder, a softmax
Dense head), at the same size as ours. Both train on the same random batches; the systems are
timed alternately, in rounds, in one process. Ends with one JSON line.

"ours" trains as the toolkit trains (its fused Adam and written-out cross-entropy), the peer as
keras-io does (Keras' optimizer and sparse cross-entropy; Adam for both, so the math is the
same). "ours_model" is our model under the peer's Keras training step: `ratio_model` isolates
what the model's layers alone gain.

    python bench/train_throughput.py                # "small", batch 64, length 40, vocab 8000
    python bench/train_throughput.py --size base --steps 20
    python bench/train_throughput.py --marian --size base --vocabulary 58101 --batch 16

`--marian` times instead, alternately under the toolkit's training step, our model and one with
an imported OPUS-MT model's options (post-norm, swish, Marian's sinusoids, a logits bias, one
table) at the same size and vocabulary, in float32 and mixed_bfloat16.

The model layers use keras.ops only, so the fixed-shape comparison also runs under Keras's JAX
backend (KERAS_BACKEND=jax), where every step is XLA-compiled; there the real-length part (which
needs tf.data and the in-graph tokenizer) is skipped. `--datasheet-tflops` adds an MFU against
the accelerator's datasheet peak (989 for an H100 SXM, bf16 dense).
"""

import argparse
import json
import os
import platform
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402

from seq2seq.config import TrainingConfig  # noqa: E402
from seq2seq.models import SIZES, Transformer  # noqa: E402
from seq2seq.training.losses import LabelSmoothedCrossEntropy  # noqa: E402


def ours(size, vocabulary, length):
    return Transformer.from_size(
        size, source_vocabulary_size=vocabulary, target_vocabulary_size=vocabulary,
        max_length=length, dropout=0.1,
    )


def marian_shaped(size, vocabulary, length):
    """Our model with the options `seq2seq.convert.marian` gives an imported OPUS-MT model."""
    return Transformer.from_size(
        size, source_vocabulary_size=vocabulary, target_vocabulary_size=vocabulary,
        max_length=length, dropout=0.1, norm_first=False, activation="swish",
        position_embedding="sinusoidal_halves", output_bias=True, share_embeddings=True,
    )


def keras_io_peer(size, vocabulary, length):
    """The keras-io KerasHub translation model, stacked to `size`."""
    config = SIZES[size]
    source = keras.Input(shape=(None,), dtype="int32", name="source")
    target = keras.Input(shape=(None,), dtype="int32", name="target")
    x = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary, length, config["hidden_dim"], mask_zero=True
    )(source)
    for _ in range(config["num_encoder_layers"]):
        x = keras_hub.layers.TransformerEncoder(
            config["intermediate_dim"], config["num_heads"], dropout=0.1
        )(x)
    encoded = x
    y = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary, length, config["hidden_dim"], mask_zero=True
    )(target)
    for _ in range(config["num_decoder_layers"]):
        y = keras_hub.layers.TransformerDecoder(
            config["intermediate_dim"], config["num_heads"], dropout=0.1
        )(y, encoded)
    y = keras.layers.Dropout(0.5)(y)
    probabilities = keras.layers.Dense(vocabulary, activation="softmax", dtype="float32")(y)
    return keras.Model([source, target], probabilities)


def compile_keras(model, jit, from_logits):
    """Keras' Adam and sparse cross-entropy, as the keras-io example trains (with Adam for
    RMSprop, so that both systems run the same update)."""
    model.compile(
        optimizer=keras.optimizers.Adam(1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        jit_compile=jit,
    )
    return model


def compile_toolkit(model, jit):
    """The toolkit's training step on the same math: the trainer's optimizer (its fused Adam on
    the TensorFlow backend; constant rate, no clipping) and its written-out cross-entropy
    (smoothing 0). No metrics, as on the peer's side."""
    if keras.backend.backend() == "tensorflow":
        # Imported here: the trainer needs TensorFlow, which the JAX-backend runs lack.
        from seq2seq.training.trainer import build_optimizer

        training = TrainingConfig(learning_rate=1e-4, schedule="constant", warmup_steps=0,
                                  clip_norm=None)
        optimizer = build_optimizer(training)
    else:  # the fused kernel is TensorFlow's
        optimizer = keras.optimizers.Adam(1e-4)
    model.compile(optimizer=optimizer, loss=LabelSmoothedCrossEntropy(0.0), jit_compile=jit)
    return model


def flops_per_target_token(size, vocabulary, source_length, target_length):
    """Model FLOPs (forward + backward = 3x forward matmul FLOPs) per target token."""
    c = SIZES[size]
    d, f = c["hidden_dim"], c["intermediate_dim"]
    s, t = source_length, target_length
    encoder = c["num_encoder_layers"] * s * (2 * 4 * d * d + 2 * 2 * d * f + 2 * 2 * s * d)
    decoder = c["num_decoder_layers"] * (
        t * (2 * 4 * d * d + 2 * 2 * t * d)  # self-attention
        + t * 2 * 2 * d * d + s * 2 * 2 * d * d + t * 2 * 2 * s * d  # cross-attention
        + t * 2 * 2 * d * f  # feed-forward
    )
    output = t * 2 * d * vocabulary
    return 3 * (encoder + decoder + output) / t


def compiled(function):
    """`function` compiled by the active backend (a tf.function, or jax.jit)."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(function)
    import tensorflow as tf

    return tf.function(function)


def on_accelerator():
    if keras.backend.backend() == "jax":
        import jax

        return jax.devices()[0].platform != "cpu"
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def measured_peak_flops(dtype, seconds=1.0):
    """FLOP/s of an n x n x n matmul, repeated for at least `seconds` after a warm-up."""
    n = 8192 if on_accelerator() else 4096
    a = keras.random.normal((n, n), dtype=dtype)
    b = keras.random.normal((n, n), dtype=dtype)
    matmul = compiled(keras.ops.matmul)
    np.asarray(matmul(a, b), "float32")
    repeats, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(burst := 20 if n == 8192 else 1):
            result = matmul(a, b)
        np.asarray(result[:1, :1], "float32")
        repeats += burst
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def time_steps(model, batch, labels, steps):
    start = time.perf_counter()
    for _ in range(steps):
        loss = model.train_on_batch(batch, labels, return_dict=False)
    float(np.asarray(loss))
    return time.perf_counter() - start


def run_mode(args, policy, jit_ours, jit_peer, rng):
    """Alternating rounds of both systems under one dtype policy; returns target tokens/s."""
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    length, vocab = args.length, args.vocabulary
    source = rng.integers(3, vocab, size=(args.batch, length)).astype("int32")
    target = rng.integers(3, vocab, size=(args.batch, length + 1)).astype("int32")
    batch, labels = (source, target[:, :-1]), target[:, 1:]
    if args.marian:
        systems = {
            "ours": compile_toolkit(ours(args.size, vocab, length), jit_ours),
            "marian": compile_toolkit(marian_shaped(args.size, vocab, length), jit_ours),
        }
    else:
        systems = {
            "ours": compile_toolkit(ours(args.size, vocab, length), jit_ours),
            "ours_model": compile_keras(ours(args.size, vocab, length), jit_ours,
                                        from_logits=True),
            "peer": compile_keras(keras_io_peer(args.size, vocab, length), jit_peer, False),
        }
    for model in systems.values():  # trace, compile, warm up
        time_steps(model, batch, labels, 2)
    seconds = {name: 0.0 for name in systems}
    for _ in range(args.rounds):
        for name, model in systems.items():
            seconds[name] += time_steps(model, batch, labels, args.steps)
    tokens = args.rounds * args.steps * args.batch * length
    keras.config.set_dtype_policy("float32")
    return {name: tokens / s for name, s in seconds.items()}


def real_length_throughput(args, rounds=3, steps=6):
    """Float32 target tokens/s on the bundled LibreOffice help data, non-pad tokens only.

    Ours: its bucketed token-budget pipeline (budget = batch * length tokens). The peer: the
    keras-io way, batches of `batch` pairs padded to `length`. Same pairs (those that fit in
    `length` tokens), same tokenizer.
    """
    import tensorflow as tf

    from seq2seq import datasets
    from seq2seq.data.pipeline import encode_pairs, make_dataset
    from seq2seq.text.tokenizer import train_tokenizer

    keras.config.set_dtype_policy("float32")
    pairs = datasets.load("libreoffice-help", split="train")
    tokenizer = train_tokenizer(
        [s for p in pairs[:20000] for s in p], vocabulary_size=args.vocabulary
    )
    sources, targets, _ = encode_pairs(pairs, tokenizer, tokenizer, max_length=args.length)
    ours_data = iter(make_dataset(
        sources, targets, batch_tokens=args.batch * args.length, max_length=args.length,
        repeat=True,
    ))
    peer_data = make_dataset(sources, targets, batch_size=args.batch, max_length=args.length,
                             repeat=True)
    # Pad the peer's batches to the fixed length, as the keras-io example does.
    pad = lambda x: tf.pad(x, [[0, 0], [0, args.length - tf.shape(x)[1]]])  # noqa: E731
    peer_data = iter(peer_data.map(
        lambda inputs, out, w: ((pad(inputs[0]), pad(inputs[1])), pad(out), pad(w))
    ))
    systems = {
        "ours": (compile_toolkit(ours(args.size, args.vocabulary, args.length), False),
                 ours_data),
        "peer": (compile_keras(keras_io_peer(args.size, args.vocabulary, args.length), False,
                               False), peer_data),
    }

    def run(model, data, count):
        tokens, start = 0.0, time.perf_counter()
        for _ in range(count):
            inputs, labels, weights = next(data)
            loss = model.train_on_batch(inputs, labels, sample_weight=weights, return_dict=False)
            tokens += float(tf.reduce_sum(weights))
        float(np.asarray(loss))
        return tokens, time.perf_counter() - start

    for model, data in systems.values():  # traces for the first shapes
        run(model, data, 8)
    totals = {name: [0.0, 0.0] for name in systems}
    for _ in range(rounds):
        for name, (model, data) in systems.items():
            tokens, seconds = run(model, data, steps)
            totals[name][0] += tokens
            totals[name][1] += seconds
    return {name: tokens / seconds for name, (tokens, seconds) in totals.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="small")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=40)
    parser.add_argument("--vocabulary", type=int, default=8000)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--real-only", action="store_true", help="only the real-length run")
    parser.add_argument("--marian", action="store_true",
                        help="our model against one with an imported OPUS-MT model's options")
    parser.add_argument("--datasheet-tflops", type=float, default=None,
                        help="the accelerator's datasheet bf16 peak, for a second MFU figure")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    on_tensorflow = keras.backend.backend() == "tensorflow"
    if args.marian:
        results = {policy: run_mode(args, policy, False, False, rng)
                   for policy in ("float32", "mixed_bfloat16")}
        print(json.dumps({
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "size": args.size, "vocabulary": args.vocabulary, "batch": args.batch,
            "length": args.length,
            **{f"{name}_{policy}_tgt_tok_s": round(value, 1)
               for policy, result in results.items() for name, value in result.items()},
            **{f"ratio_marian_{policy}": round(result["marian"] / result["ours"], 3)
               for policy, result in results.items()},
        }))
        return

    real = real_length_throughput(args) if on_tensorflow else None
    if real:
        print("real", {k: round(v, 1) for k, v in real.items()}, flush=True)
    if args.real_only:
        print(json.dumps({
            "ours_real_tgt_tok_s": round(real["ours"], 1),
            "peer_real_tgt_tok_s": round(real["peer"], 1),
            "ratio_real": round(real["ours"] / real["peer"], 3),
        }))
        return

    results = {}
    for policy in ("float32", "mixed_bfloat16"):
        for jit in (False, True) if on_tensorflow else (True,):
            key = f"{policy}{'_xla' if jit else ''}"
            results[key] = run_mode(args, policy, jit, jit, rng)
            print(key, {k: round(v, 1) for k, v in results[key].items()}, flush=True)

    fp32_key = "float32" if on_tensorflow else "float32_xla"
    bf16_key = "mixed_bfloat16" if on_tensorflow else "mixed_bfloat16_xla"
    best_ours = max(r["ours"] for r in results.values())
    best_peer = max(r["peer"] for r in results.values())
    flops = flops_per_target_token(args.size, args.vocabulary, args.length, args.length)
    peak_fp32 = measured_peak_flops("float32")
    peak_bf16 = measured_peak_flops("bfloat16")
    best_key = max(results, key=lambda k: results[k]["ours"])
    # Against the faster of the two matmul peaks: on a CPU without AMX the bfloat16 matmul is
    # slower than the float32 one, and XLA may run bfloat16 dots in float32.
    peak = max(peak_bf16, peak_fp32) if best_key.startswith("mixed") else peak_fp32
    summary = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "backend": keras.backend.backend(),
        "size": args.size,
        "batch": args.batch,
        "length": args.length,
        "ours_tgt_tok_s": round(results[fp32_key]["ours"], 1),
        "peer_tgt_tok_s": round(results[fp32_key]["peer"], 1),
        "ratio": round(results[fp32_key]["ours"] / results[fp32_key]["peer"], 3),
        "ratio_bf16": round(results[bf16_key]["ours"] / results[bf16_key]["peer"], 3),
        "ratio_best": round(best_ours / best_peer, 3),
        # The model alone: ours under Keras' Adam and loss, as the peer.
        "ours_model_tgt_tok_s": round(results[fp32_key]["ours_model"], 1),
        "ratio_model": round(results[fp32_key]["ours_model"] / results[fp32_key]["peer"], 3),
        "ratio_model_bf16": round(
            results[bf16_key]["ours_model"] / results[bf16_key]["peer"], 3
        ),
        "ratio_real": round(real["ours"] / real["peer"], 3) if real else None,
        "ours_real_tgt_tok_s": round(real["ours"], 1) if real else None,
        "peer_real_tgt_tok_s": round(real["peer"], 1) if real else None,
        "best_ours_setting": best_key,
        "flops_per_tgt_token": round(flops),
        "peak_flops_fp32": round(peak_fp32),
        "peak_flops_bf16": round(peak_bf16),
        "mfu": round(best_ours * flops / peak, 4),
        "mfu_datasheet": (round(best_ours * flops / (args.datasheet_tflops * 1e12), 4)
                          if args.datasheet_tflops else None),
        "all": {k: {n: round(v, 1) for n, v in r.items()} for k, r in results.items()},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
