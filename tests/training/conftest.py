import pathlib

import pytest
import yaml

from seq2seq import recipes

ROOT = pathlib.Path(__file__).parents[2]
FIXTURE_TSV = ROOT / "tests" / "fixtures" / "libreoffice-help.en-de.tsv"
FIXTURE_JSONL = ROOT / "tests" / "fixtures" / "debian-descriptions.jsonl"


def shrink(recipe, tmp_path, **sections):
    """A recipe's real config shrunk to tiny sizes on the fixtures; returns its path."""
    config = yaml.safe_load(recipes.path(recipe).read_text())
    config["model"].update(size="tiny", max_length=48)
    config["data"].update(vocabulary_size=300, batch_tokens=768, tokenizer_train_pairs=400)
    if config["data"].get("max_source_length"):
        config["data"]["max_source_length"] = 32
    if config["data"]["task"] == "translation":
        files = dict(dataset=None, format="tsv", train_file=str(FIXTURE_TSV),
                     valid_file=str(FIXTURE_TSV), test_file=str(FIXTURE_TSV))
    else:
        files = dict(dataset=None, format="jsonl", source_field="description",
                     target_field="synopsis", train_file=str(FIXTURE_JSONL),
                     valid_file=str(FIXTURE_JSONL), test_file=str(FIXTURE_JSONL))
    config["data"].update(files)
    config["training"].update(steps=6, eval_every=3, warmup_steps=2, valid_sentences=8,
                              time_budget_minutes=None, precision="float32")
    config["decoding"].update(beam_size=2, max_length=24, examples=2)
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    path = tmp_path / f"{recipe}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def shrunk():
    return shrink
