"""The translation recipe's training step in float32 against mixed_bfloat16 on this machine.

What `training.precision: auto` decides without measuring (seq2seq/training/precision.py):
two `Run`s of recipes/translation/config.yaml, one per policy, train on the same cached real
batches, timed alternately in rounds in one process, after a warm-up pass over every batch
shape. Ends with one JSON line: target tokens/s per policy, `bf16_speedup` (mixed_bfloat16
over float32) and what `auto` picks here.

    python bench/precision.py
"""

import argparse
import json
import os
import platform
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from seq2seq import config as config_lib  # noqa: E402
from seq2seq.training import inputs, trainer  # noqa: E402
from seq2seq.training.precision import cpu_flags, resolve_precision  # noqa: E402

POLICIES = ("float32", "mixed_bfloat16")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="recipes/translation/config.yaml")
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    runs = {}
    with tempfile.TemporaryDirectory() as run_dir:
        for policy in POLICIES:
            config = config_lib.load(args.config, [f"training.precision={policy}"])
            runs[policy] = trainer.Run(config, run_dir, print_fn=lambda *_: None)
    run = runs["float32"]  # both runs share the data and the tokenizers
    batches = inputs.train_dataset(
        run.config.data, run.train_pairs, run.source_tokenizer, run.target_tokenizer,
        run.config.model.max_length,
    ).take(args.batches).cache()
    target_tokens = sum(int(tf.math.count_nonzero(weights)) for _, _, weights in batches)

    def epoch(policy):
        start = time.perf_counter()
        runs[policy].model.fit(batches, steps_per_epoch=args.batches, epochs=1, verbose=0)
        return time.perf_counter() - start

    for policy in POLICIES:  # trace every batch shape
        epoch(policy)
    seconds = dict.fromkeys(POLICIES, 0.0)
    for round_index in range(args.rounds):
        for policy in POLICIES:
            elapsed = epoch(policy)
            seconds[policy] += elapsed
            print(f"round {round_index} {policy}: {target_tokens / elapsed:.0f} tgt tok/s "
                  f"({elapsed:.1f} s)", flush=True)
    tokens_s = {p: round(args.rounds * target_tokens / s, 1) for p, s in seconds.items()}
    print(json.dumps({
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "amx": "amx_bf16" in cpu_flags(),
        "float32_tgt_tok_s": tokens_s["float32"],
        "mixed_bfloat16_tgt_tok_s": tokens_s["mixed_bfloat16"],
        "bf16_speedup": round(tokens_s["mixed_bfloat16"] / tokens_s["float32"], 3),
        "auto": resolve_precision("auto"),
    }))


if __name__ == "__main__":
    main()
