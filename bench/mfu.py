"""Model FLOPs utilisation of one training setup: our Transformer, our loss, compiled steps.

Where `train_throughput.py` compares two systems on equal terms (Keras' loss, one step per
call), this measures how well our own training setup uses the machine: label-smoothed loss,
mixed_bfloat16, XLA, several steps per compiled call (`steps_per_execution`), on fixed-shape
random batches. MFU counts model FLOPs only (3x the forward matmul FLOPs, attention included;
see `train_throughput.flops_per_target_token`), against the measured peak of a large bf16
matmul on the same machine and, when given, the accelerator's datasheet peak.

    python bench/mfu.py --size base --batch 1024 --length 64 --vocabulary 32000 \\
        --datasheet-tflops 989                      # an H100 SXM
    KERAS_BACKEND=jax python bench/mfu.py ...       # the same model under Keras' JAX backend

Ends with one JSON line.
"""

import argparse
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from train_throughput import flops_per_target_token, measured_peak_flops  # noqa: E402

from seq2seq.models import Transformer  # noqa: E402
from seq2seq.training.losses import LabelSmoothedCrossEntropy  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="base")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--vocabulary", type=int, default=32000)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--policy", default="mixed_bfloat16")
    parser.add_argument("--steps-per-execution", type=int, default=10)
    parser.add_argument("--executions", type=int, default=6, help="timed compiled calls")
    parser.add_argument("--datasheet-tflops", type=float, default=None)
    parser.add_argument("--profile", default=None, metavar="DIR",
                        help="after timing, trace one compiled call into DIR (JAX backend: also "
                             "a perfetto_trace.json.gz that bench/profile_breakdown.py reads)")
    args = parser.parse_args()

    keras.config.set_dtype_policy(args.policy)
    keras.utils.set_random_seed(0)
    model = Transformer.from_size(
        args.size, source_vocabulary_size=args.vocabulary, target_vocabulary_size=args.vocabulary,
        max_length=args.length, dropout=args.dropout,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-4),
        loss=LabelSmoothedCrossEntropy(0.1),
        jit_compile=True,
        steps_per_execution=args.steps_per_execution,
    )
    rng = np.random.default_rng(0)
    steps = args.steps_per_execution * args.executions
    source = rng.integers(3, args.vocabulary, (steps * args.batch, args.length)).astype("int32")
    target = rng.integers(3, args.vocabulary, (steps * args.batch, args.length + 1))
    target = target.astype("int32")
    inputs, labels = (source, target[:, :-1]), target[:, 1:]

    def run(count):
        n = count * args.batch
        start = time.perf_counter()
        model.fit((inputs[0][:n], inputs[1][:n]), labels[:n], batch_size=args.batch,
                  epochs=1, verbose=0, shuffle=False)
        return time.perf_counter() - start

    run(args.steps_per_execution)  # compile and warm up
    seconds = run(steps)
    if args.profile:
        trace(lambda: run(args.steps_per_execution), args.profile)
    tok_s = steps * args.batch * args.length / seconds
    flops = flops_per_target_token(args.size, args.vocabulary, args.length, args.length)
    peak = measured_peak_flops("bfloat16" if "bfloat16" in args.policy else "float32")
    print(json.dumps({
        "backend": keras.backend.backend(),
        "size": args.size, "batch": args.batch, "length": args.length,
        "vocabulary": args.vocabulary, "dropout": args.dropout, "policy": args.policy,
        "steps_per_execution": args.steps_per_execution,
        "step_ms": round(1000 * seconds / steps, 2),
        "tgt_tok_s": round(tok_s),
        "model_tflops": round(tok_s * flops / 1e12, 1),
        "peak_tflops": round(peak / 1e12, 1),
        "mfu": round(tok_s * flops / peak, 4),
        "mfu_datasheet": (round(tok_s * flops / (args.datasheet_tflops * 1e12), 4)
                          if args.datasheet_tflops else None),
    }))


def trace(function, directory):
    """Runs `function` under the active backend's profiler, writing the trace to `directory`."""
    if keras.backend.backend() == "jax":
        import jax

        with jax.profiler.trace(directory, create_perfetto_trace=True):
            function()
    else:
        import tensorflow as tf

        tf.profiler.experimental.start(directory)
        function()
        tf.profiler.experimental.stop()


if __name__ == "__main__":
    main()
