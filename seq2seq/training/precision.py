"""`training.precision`: the Keras dtype policy a run trains under, with `auto` resolved.

`auto` picks mixed precision only where the hardware computes in 16 bits faster than in 32:
bfloat16 on GPUs of compute capability 8.0 and newer (A100, H100) and on TPUs; float16 with
loss scaling on capability 7.x (V100, T4: tensor cores, but no bfloat16); float32 on older
GPUs. On a CPU, bfloat16 matmuls are fast only with AMX tiles: measured on two 2-core Xeon
machines of our CI class, a 4096x4096 matmul ran at 1219 GFLOP/s bfloat16 / 310 float32 with
AMX, but 157 bfloat16 / 275 float32 without it (AVX512_BF16 alone), where the recipe's
training step was about 25% slower in mixed_bfloat16 than in float32 (docs/benchmarks.md).
"""

import pathlib

import tensorflow as tf

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


def choose_precision(gpu_compute_capability=None, cpu_flag_set=(), tpu=False):
    """The fastest policy for a machine described by its facts (see the module docstring)."""
    if tpu:
        return "mixed_bfloat16"
    if gpu_compute_capability is not None:
        if tuple(gpu_compute_capability) >= (8, 0):
            return "mixed_bfloat16"
        if tuple(gpu_compute_capability) >= (7, 0):
            return "mixed_float16"
        return "float32"
    return "mixed_bfloat16" if "amx_bf16" in cpu_flag_set else "float32"


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The instruction-set flags of the first CPU in `cpuinfo` (empty where there is none)."""
    path = pathlib.Path(cpuinfo)
    if not path.exists():
        return frozenset()
    for line in path.read_text().splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def resolve_precision(name, strategy="default"):
    """`name` itself, or for `auto` the policy `choose_precision` picks for this machine."""
    if name in POLICIES:
        return name
    if name != "auto":
        raise ValueError(
            f"training.precision={name!r}; expected auto or one of {', '.join(POLICIES)}."
        )
    capability = None
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get(
            "compute_capability", (0, 0)
        )
    return choose_precision(capability, cpu_flags(), tpu=strategy == "tpu")
