"""`training.precision: auto` picks mixed precision only where 16-bit math is faster."""

import pytest

from seq2seq.training import precision
from seq2seq.training.precision import (
    choose_precision,
    cpu_bfloat16_matmul_speedup,
    cpu_flags,
    resolve_precision,
)


@pytest.mark.parametrize("facts, expected", [
    (dict(gpu_compute_capability=(9, 0)), "mixed_bfloat16"),  # H100
    (dict(gpu_compute_capability=(8, 0)), "mixed_bfloat16"),  # A100
    (dict(gpu_compute_capability=(7, 5)), "mixed_float16"),  # T4: tensor cores, no bfloat16
    (dict(gpu_compute_capability=(6, 0)), "float32"),  # P100
    (dict(tpu=True), "mixed_bfloat16"),
    (dict(cpu_bf16_speedup=3.9), "mixed_bfloat16"),  # Xeon with AMX
    (dict(cpu_bf16_speedup=1.65), "mixed_bfloat16"),  # AMD Zen 5, AVX512_BF16
    (dict(cpu_bf16_speedup=1.25), "mixed_bfloat16"),  # the threshold itself
    (dict(cpu_bf16_speedup=1.2), "float32"),  # faster matmuls, but not enough for the step
    (dict(cpu_bf16_speedup=0.57), "float32"),  # Xeon with AVX512_BF16, no AMX
    (dict(), "float32"),  # a CPU without bfloat16 dot products
])
def test_auto_picks_by_the_hardware(facts, expected):
    assert choose_precision(**facts) == expected


def test_cpu_flags_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu avx512f amx_bf16\n"
                       "\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(cpuinfo) == {"fpu", "avx512f", "amx_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_auto_on_a_cpu_measures_only_where_bfloat16_dot_products_exist(monkeypatch):
    monkeypatch.setattr(precision.tf.config, "list_physical_devices", lambda kind: [])
    probes = []

    def probe(speedup):
        return lambda: probes.append(speedup) or speedup

    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    monkeypatch.setattr(precision, "cpu_bfloat16_matmul_speedup", probe(1.65))
    assert resolve_precision("auto") == (
        "mixed_bfloat16", "CPU bfloat16 matmul 1.65x float32, needs 1.25x"
    )
    monkeypatch.setattr(precision, "cpu_bfloat16_matmul_speedup", probe(0.57))
    assert resolve_precision("auto") == (
        "float32", "CPU bfloat16 matmul 0.57x float32, needs 1.25x"
    )
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512f", "amx_bf16"})
    assert resolve_precision("auto")[0] == "float32"  # the probe decides, not the flag
    assert probes == [1.65, 0.57, 0.57]

    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "fma"})
    assert resolve_precision("auto") == ("float32", "CPU without bfloat16 dot products")
    assert resolve_precision("auto", strategy="tpu") == ("mixed_bfloat16", "TPU")
    assert resolve_precision("mixed_float16") == ("mixed_float16", "as configured")
    assert probes == [1.65, 0.57, 0.57]  # no probe without the instructions, on a TPU or named
    with pytest.raises(ValueError, match="training.precision='bf16'; expected auto or one of "
                                         "float32, mixed_bfloat16, mixed_float16"):
        resolve_precision("bf16")


def test_auto_on_a_gpu_goes_by_its_compute_capability(monkeypatch):
    monkeypatch.setattr(precision.tf.config, "list_physical_devices", lambda kind: ["GPU:0"])
    monkeypatch.setattr(precision.tf.config.experimental, "get_device_details",
                        lambda device: {"compute_capability": (7, 5)})
    assert resolve_precision("auto") == ("mixed_float16", "GPU of compute capability 7.5")


def test_the_probe_times_both_dtypes_on_this_cpu(monkeypatch):
    # Its ratio is float32's best time over bfloat16's: with matmul made to take 1 ms in
    # float32 and 4 ms in bfloat16 (a clock that advances by those), exactly 0.25.
    clock = [0.0]
    real_matmul = precision.tf.matmul

    def timed_matmul(x, y):
        clock[0] += {precision.tf.float32: 1e-3, precision.tf.bfloat16: 4e-3}[x.dtype]
        return real_matmul(x, y)

    monkeypatch.setattr(precision.tf, "matmul", timed_matmul)
    monkeypatch.setattr(precision.time, "perf_counter", lambda: clock[0])
    assert cpu_bfloat16_matmul_speedup(size=64, rounds=2, calls=3) == pytest.approx(0.25)
    monkeypatch.undo()
    # And on the real clock it gives a finite, positive ratio for this machine.
    assert 0.05 < cpu_bfloat16_matmul_speedup(size=256, rounds=2, calls=2) < 50
