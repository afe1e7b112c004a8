"""The GPU benches run under Keras' JAX backend on machines that have no TensorFlow.

So nothing they import when they start (their module-level imports, followed through the
project's own modules) may import TensorFlow; a TensorFlow-only import belongs inside the
function that needs it. Checked statically: CI has TensorFlow and no JAX.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).parents[1]
GPU_BENCHES = ["mfu.py", "train_throughput.py", "decode.py"]
TENSORFLOW_ONLY = {"tensorflow", "tensorflow_text"}


def module_level_imports(path):
    """Absolute names imported by the statements at the top level of a file."""
    names = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def project_file(name):
    """The file of a project module (`seq2seq...` or a bench script), or None."""
    parts = name.split(".")
    if parts[0] != "seq2seq":
        path = ROOT / "bench" / f"{name}.py"
        return path if len(parts) == 1 and path.exists() else None
    base = ROOT.joinpath(*parts)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def tensorflow_imports(start):
    """`(file, name)` for each TensorFlow-only module-level import reachable from `start`."""
    found, seen, todo = [], set(), [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in module_level_imports(path):
            if name.split(".")[0] in TENSORFLOW_ONLY:
                found.append((str(path.relative_to(ROOT)), name))
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # a package's __init__ runs before its modules
                if (file := project_file(".".join(parts[:i]))) is not None:
                    todo.append(file)
    return found


@pytest.mark.parametrize("bench", GPU_BENCHES)
def test_a_gpu_bench_starts_without_tensorflow(bench):
    assert tensorflow_imports(ROOT / "bench" / bench) == []


def test_the_check_sees_an_import_through_the_project():
    # The trainer needs TensorFlow: importing it at the top (as train_throughput once did)
    # must be caught through seq2seq.training.trainer.
    found = tensorflow_imports(ROOT / "seq2seq" / "training" / "trainer.py")
    assert ("seq2seq/training/trainer.py", "tensorflow") in found
