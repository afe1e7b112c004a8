"""Where a compiled training step's GPU time goes: kernel time per step, by kind of work.

Reads the trace `bench/mfu.py --profile DIR` writes under Keras' JAX backend and the optimized
HLO that XLA dumps in the same run, and sorts every GPU kernel into matmul (cuBLAS and XLA's
GEMM fusions) or, by the model op XLA's metadata names for it, dropout, layer norm, attention
softmax, loss, optimizer, layout (transposes, concatenations, copies) and other:

    XLA_FLAGS="--xla_gpu_enable_command_buffer= --xla_dump_to=/tmp/hlo --xla_dump_hlo_as_text \\
        --xla_dump_hlo_module_re=.*train_step.*" KERAS_BACKEND=jax python bench/mfu.py \\
        --executions 2 --profile /tmp/trace
    python bench/profile_breakdown.py /tmp/trace /tmp/hlo --steps 10

(Command buffers off, so each kernel in the trace carries the name of its HLO instruction.)
Ends with one JSON line: milliseconds per step for each kind and in all.
"""

import argparse
import collections
import gzip
import json
import pathlib
import re

MATMUL_KERNELS = ("nvjet", "gemm", "cutlass", "cublas", "xmma")
KINDS_BY_OP_NAME = (  # first match wins
    ("dropout", ("dropout", "bernoulli", "threefry", "random_bits")),
    ("layer_norm", ("layer_norm", "norm/")),
    ("attention_softmax", ("softmax",)),
    ("loss", ("compile_loss", "cross_entropy")),
    ("optimizer", ("adam", "optimizer")),
)
LAYOUT_KERNELS = ("transpose", "concatenate", "copy", "slice")


def hlo_op_names(hlo_text):
    """`{instruction: op_name}` from the metadata of an optimized HLO module's instructions."""
    pattern = re.compile(r'^\s*%?([\w.\-]+) = [^\n]*?metadata=\{op_name="([^"]*)"', re.M)
    return {m.group(1): m.group(2) for m in pattern.finditer(hlo_text)}


def kind_of(kernel, op_name):
    if any(word in kernel.lower() for word in MATMUL_KERNELS):
        return "matmul"
    for kind, words in KINDS_BY_OP_NAME:
        if any(word in op_name.lower() for word in words):
            return kind
    if any(word in kernel for word in LAYOUT_KERNELS):
        return "layout"
    return "other"


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trace_dir", type=pathlib.Path)
    parser.add_argument("hlo_dir", type=pathlib.Path)
    parser.add_argument("--steps", type=int, default=10, help="training steps in the trace")
    args = parser.parse_args()

    traces = sorted(args.trace_dir.rglob("perfetto_trace.json.gz"))
    modules = sorted(args.hlo_dir.glob("*train_step*after_optimizations.txt"),
                     key=lambda path: path.stat().st_size)
    if not traces or not modules:
        raise SystemExit(f"expected a perfetto_trace.json.gz under {args.trace_dir} and a "
                         f"*train_step*after_optimizations.txt in {args.hlo_dir}; found "
                         f"{len(traces)} and {len(modules)}")
    op_names = hlo_op_names(modules[-1].read_text())
    events = json.load(gzip.open(traces[-1]))
    events = events["traceEvents"] if isinstance(events, dict) else events
    gpu = {e["pid"] for e in events
           if e.get("ph") == "M" and e.get("name") == "process_name"
           and "GPU" in e["args"]["name"]}
    milliseconds = collections.Counter()
    for event in events:
        if event.get("ph") != "X" or event["pid"] not in gpu or not event.get("dur"):
            continue
        op = event.get("args", {}).get("hlo_op", event["name"])
        kind = kind_of(event["name"], op_names.get(op, ""))
        milliseconds[kind] += event["dur"] / 1000 / args.steps
    result = {kind: round(ms, 2) for kind, ms in milliseconds.most_common()}
    print(json.dumps({**result, "total": round(sum(milliseconds.values()), 2)}))


if __name__ == "__main__":
    main()
