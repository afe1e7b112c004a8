"""The translation recipe's training step in float32 against mixed_bfloat16 on this machine.

What `training.precision: auto` decides from a matmul probe (seq2seq/training/precision.py)
measured on the recipe's whole step:
two `Run`s of the translation recipe, one per policy, train on the same cached real
batches, timed alternately in rounds in one process, after a warm-up pass over every batch
shape (bench/recipe_steps.py). Ends with one JSON line: target tokens/s per policy,
`bf16_speedup` (mixed_bfloat16 over float32) and what `auto` picks here, with its reason (on a
CPU with bfloat16 dot products, the matmul speedup its probe measured).

    python bench/precision.py
"""

import json
import os
import platform

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from recipe_steps import alternate, cached_batches, parse_args, recipe_runs  # noqa: E402
from seq2seq.training.precision import cpu_flags, resolve_precision  # noqa: E402

POLICIES = ("float32", "mixed_bfloat16")


def main():
    args = parse_args(__doc__)

    runs = recipe_runs(args.config, {p: [f"training.precision={p}"] for p in POLICIES})
    # Both runs share the data and the tokenizers.
    batches, target_tokens = cached_batches(runs["float32"], args.batches)
    totals = alternate(runs, batches, args.batches, target_tokens, args.rounds)
    tokens_s = {p: round(args.rounds * target_tokens / totals[p][0], 1) for p in POLICIES}
    print(json.dumps({
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "amx": "amx_bf16" in cpu_flags(),
        "float32_tgt_tok_s": tokens_s["float32"],
        "mixed_bfloat16_tgt_tok_s": tokens_s["mixed_bfloat16"],
        "bf16_speedup": round(tokens_s["mixed_bfloat16"] / tokens_s["float32"], 3),
        "auto": "{} ({})".format(*resolve_precision("auto")),
    }))


if __name__ == "__main__":
    main()
