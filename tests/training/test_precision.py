"""`training.precision: auto` picks mixed precision only where 16-bit math is faster."""

import pytest

from seq2seq.training import precision
from seq2seq.training.precision import choose_precision, cpu_flags, resolve_precision


@pytest.mark.parametrize("facts, expected", [
    (dict(gpu_compute_capability=(9, 0)), "mixed_bfloat16"),  # H100
    (dict(gpu_compute_capability=(8, 0)), "mixed_bfloat16"),  # A100
    (dict(gpu_compute_capability=(7, 5)), "mixed_float16"),  # T4: tensor cores, no bfloat16
    (dict(gpu_compute_capability=(6, 0)), "float32"),  # P100
    (dict(tpu=True), "mixed_bfloat16"),
    (dict(cpu_flag_set={"avx512f", "avx512_bf16", "amx_tile", "amx_bf16"}), "mixed_bfloat16"),
    (dict(cpu_flag_set={"avx512f", "avx512_bf16"}), "float32"),  # no AMX: bf16 matmuls are slower
    (dict(), "float32"),
])
def test_auto_picks_by_the_hardware(facts, expected):
    assert choose_precision(**facts) == expected


def test_cpu_flags_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu avx512f amx_bf16\n"
                       "\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(cpuinfo) == {"fpu", "avx512f", "amx_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_auto_resolves_from_this_machine_and_names_pass_through(monkeypatch):
    monkeypatch.setattr(precision.tf.config, "list_physical_devices", lambda kind: [])
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512f", "amx_bf16"})
    assert resolve_precision("auto") == "mixed_bfloat16"
    assert resolve_precision("auto", strategy="tpu") == "mixed_bfloat16"
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512f"})
    assert resolve_precision("auto") == "float32"
    assert resolve_precision("auto", strategy="tpu") == "mixed_bfloat16"
    assert resolve_precision("mixed_float16") == "mixed_float16"
    with pytest.raises(ValueError, match="training.precision='bf16'; expected auto or one of "
                                         "float32, mixed_bfloat16, mixed_float16"):
        resolve_precision("bf16")
