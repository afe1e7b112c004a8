"""Every notebook runs top to bottom in fast mode (SEQ2SEQ_FAST=1) without an error."""

import json
import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


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
        assert "class " not in "".join("".join(c["source"]) for c in cells), "redefines a layer"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_notebook_runs_in_fast_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("SEQ2SEQ_FAST", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    notebook = nbformat.read(path, as_version=4)
    # Run in a scratch directory (runs/ is written there); the notebook finds recipes/ by
    # walking up from its working directory, so link the repository's.
    (tmp_path / "recipes").symlink_to(ROOT / "recipes")
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [output for cell in notebook.cells for output in cell.get("outputs", [])
              if output.get("output_type") == "error"]
    assert not errors
