"""Every notebook runs top to bottom in fast mode (SEQ2SEQ_FAST=1) as it runs in Colab: the
project built as a wheel and installed (not editable) into a fresh virtual environment, the
notebook executed from an empty folder outside the checkout."""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig

import pytest

ROOT = pathlib.Path(__file__).parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

# Runs one notebook with nbclient in the virtual environment's Python (so the kernel is that
# Python too), then one more cell that reports where the kernel imported seq2seq from.
RUNNER = """
import json, sys
import nbformat
from nbclient import NotebookClient
notebook = nbformat.read(sys.argv[1], as_version=4)
notebook.cells.append(nbformat.v4.new_code_cell(
    "import seq2seq, sys; print(seq2seq.__file__); print(sys.executable)"))
NotebookClient(notebook, timeout=600, kernel_name="python3",
               resources={"metadata": {"path": sys.argv[2]}}).execute()
errors = [output for cell in notebook.cells for output in cell.get("outputs", [])
          if output.get("output_type") == "error"]
where = notebook.cells[-1].outputs[0]["text"].split()
print(json.dumps({"errors": errors, "seq2seq": where[0], "python": where[1]}))
"""


def test_there_are_four_notebooks_committed_without_outputs():
    assert [n.name for n in NOTEBOOKS] == [
        "01_translation_quickstart.ipynb", "02_summarization.ipynb",
        "03_hyperparameter_search.ipynb", "04_inside_the_transformer.ipynb",
    ]
    for path in NOTEBOOKS:
        notebook = json.loads(path.read_text())
        cells = notebook["cells"]
        assert "colab-badge.svg" in "".join(cells[0]["source"])
        assert "pip install" in "".join(cells[1]["source"])
        for cell in cells:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, path.name
        text = "".join("".join(c["source"]) for c in cells)
        assert "class " not in text, "redefines a layer"
        assert "recipes/" not in text and ".yaml" not in text, "reads a file of the checkout"


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory):
    """The Python of a fresh virtual environment holding the project's wheel. Its dependencies
    come from this environment's site-packages, added as a plain path: the .pth files there are
    not run, so an editable install of the checkout cannot take precedence over the wheel."""
    base = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools builds in the source folder, which parallel workers share.
    source = base / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.cfg", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "seq2seq", source / "seq2seq",
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(base / "dist"), str(source)], check=True)
    (wheel,) = (base / "dist").glob("seq2seq-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(base / "venv")],
                   check=True)
    python = base / "venv" / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True)
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (pathlib.Path(site.stdout.strip()) / "dependencies.pth").write_text("\n".join(paths) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--target", site.stdout.strip(), str(wheel)], check=True)
    return python


@pytest.mark.slow  # CI runs it apart (setup.cfg)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_notebook_runs_from_the_installed_wheel_outside_the_checkout(path, tmp_path,
                                                                     installed_wheel):
    work = tmp_path / "colab"  # empty, as Colab's /content is
    work.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(SEQ2SEQ_FAST="1", TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([str(installed_wheel), "-c", RUNNER, str(path), str(work)],
                            cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert not report["errors"], report["errors"]
    venv = installed_wheel.parents[1]
    assert pathlib.Path(report["python"]).parents[1] == venv
    assert pathlib.Path(report["seq2seq"]).is_relative_to(venv), report["seq2seq"]
    assert not pathlib.Path(report["seq2seq"]).is_relative_to(ROOT)
