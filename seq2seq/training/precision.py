"""`training.precision`: the Keras dtype policy a run trains under, with `auto` resolved.

`auto` picks mixed precision only where the hardware computes in 16 bits faster than in 32:
bfloat16 on GPUs of compute capability 8.0 and newer (A100, H100) and on TPUs; float16 with
loss scaling on capability 7.x (V100, T4: tensor cores, but no bfloat16); float32 on older
GPUs.

On a CPU the instruction-set flags do not tell, so `auto` measures. A CPU without bfloat16
dot-product instructions (neither `avx512_bf16` nor `amx_bf16`) trains in float32. With them,
the same matmul is timed in both dtypes and bfloat16 is taken when it runs at least
`MIN_CPU_BF16_SPEEDUP` times as fast: two CPUs with the same `avx512_bf16` flag train fastest
in opposite precisions (`bench/precision.py`; docs/benchmarks.md). Every process measures for itself, so the workers of a multi-worker cluster of such CPUs could
in principle disagree (each still trains, with float32 weights and gradients either way);
naming the policy in `training.precision` rules that out.
"""

import pathlib
import time

import tensorflow as tf

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
# bfloat16 matmuls must be at least this much faster for bfloat16 training to pay: casts,
# element-wise ops and the float32 loss do not speed up (`bench/precision.py`).
MIN_CPU_BF16_SPEEDUP = 1.25
CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def choose_precision(gpu_compute_capability=None, tpu=False, cpu_bf16_speedup=None):
    """The fastest policy for a machine described by its facts (see the module docstring);
    `cpu_bf16_speedup` is `cpu_bfloat16_matmul_speedup()` there, None without bfloat16 dot
    products."""
    if tpu:
        return "mixed_bfloat16"
    if gpu_compute_capability is not None:
        if tuple(gpu_compute_capability) >= (8, 0):
            return "mixed_bfloat16"
        if tuple(gpu_compute_capability) >= (7, 0):
            return "mixed_float16"
        return "float32"
    if cpu_bf16_speedup is not None and cpu_bf16_speedup >= MIN_CPU_BF16_SPEEDUP:
        return "mixed_bfloat16"
    return "float32"


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The instruction-set flags of the first CPU in `cpuinfo` (empty where there is none)."""
    path = pathlib.Path(cpuinfo)
    if not path.exists():
        return frozenset()
    for line in path.read_text().splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def cpu_bfloat16_matmul_speedup(size=1024, rounds=5, calls=4):
    """How many times faster a (size x size) @ (size x size) matmul runs on this CPU in
    bfloat16 than in float32: the best of `rounds` rounds of `calls` products each, the
    dtypes alternating (about 0.2 s on the machines above)."""
    with tf.device("/CPU:0"):
        a = tf.random.stateless_normal((size, size), seed=(1, 2))
        operands = {tf.float32: a, tf.bfloat16: tf.cast(a, tf.bfloat16)}
        best = {dtype: float("inf") for dtype in operands}
        for _ in range(rounds + 1):  # the first round warms oneDNN's kernels up
            for dtype, x in operands.items():
                start = time.perf_counter()
                for _ in range(calls):
                    product = tf.matmul(x, x)
                product.numpy()
                best[dtype] = min(best[dtype], time.perf_counter() - start)
    return best[tf.float32] / best[tf.bfloat16]


def resolve_precision(name, strategy="default"):
    """(policy, why): `name` itself, or for `auto` the policy `choose_precision` picks for
    this machine and the facts it went by, in words."""
    if name in POLICIES:
        return name, "as configured"
    if name != "auto":
        raise ValueError(
            f"training.precision={name!r}; expected auto or one of {', '.join(POLICIES)}."
        )
    if strategy == "tpu":
        return choose_precision(tpu=True), "TPU"
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get(
            "compute_capability", (0, 0)
        )
        why = "GPU of compute capability {}.{}".format(*capability)
        return choose_precision(gpu_compute_capability=capability), why
    if not CPU_BF16_FLAGS & cpu_flags():
        return choose_precision(), "CPU without bfloat16 dot products"
    speedup = cpu_bfloat16_matmul_speedup()
    why = f"CPU bfloat16 matmul {speedup:.2f}x float32, needs {MIN_CPU_BF16_SPEEDUP}x"
    return choose_precision(cpu_bf16_speedup=speedup), why
