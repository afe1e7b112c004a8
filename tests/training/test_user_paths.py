"""The paths a user takes off the recipe, on files the user wrote: exact steps, a run reopened
after its data moved, averaging, fine-tuning, a frozen encoder resumed, typos and filtered
data refused before any work."""

import io
import json
import shutil
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq import config as config_lib
from seq2seq.cli import main
from seq2seq.run_directory import load_run
from seq2seq.training import trainer

from .conftest import FIXTURE_JSONL, FIXTURE_TSV

SOURCES = ["Choose Tools - Options.", "Insert a new sheet.", "Click OK.", "Save the document.",
           "Select the cells.", "Open the Format menu.", "Delete the row.", "Print the page.",
           "Close the dialog.", "Enter a formula."]


def user_tsv(tmp_path, name="mine.tsv", start=0, count=200):
    """A TSV file as a user writes one: pairs of the repository's fixture, own name, own place."""
    lines = FIXTURE_TSV.read_text(encoding="utf-8").splitlines()[start:start + count]
    path = tmp_path / "data" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def user_jsonl(tmp_path, name="other.jsonl"):
    """JSONL pairs of another domain (package descriptions and their synopses)."""
    rows = [json.loads(line) for line in FIXTURE_JSONL.read_text().splitlines()]
    path = tmp_path / "data" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"en": r["synopsis"], "de": r["description"][:120]}) + "\n"
                            for r in rows))
    return path


def tiny(train, *overrides, **files):
    """A tiny translation config on the user's files."""
    valid = files.get("valid", train)
    settings = [
        "data.dataset=null", f"data.train_file={train}", f"data.valid_file={valid}",
        f"data.test_file={files.get('test', valid)}", "model.size=tiny", "model.max_length=48",
        "model.dropout=0", "data.vocabulary_size=300", "data.batch_tokens=768",
        "data.tokenizer_train_pairs=400", "training.steps=6", "training.eval_every=3",
        "training.warmup_steps=2", "training.valid_sentences=8", "training.precision=float32",
        "training.seed=7", "decoding.beam_size=2", "decoding.max_length=24",
        "export.enabled=false",
    ]
    return config_lib.load(None, settings + list(overrides))


def train(config, run_dir):
    lines = []
    keras.backend.clear_session()
    run = trainer.train(config, run_dir, print_fn=lines.append)
    return run, lines


def checkpoint_value(run_dir, key, checkpoint=None):
    path = checkpoint or tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    return tf.train.load_checkpoint(path).get_tensor(f"{key}/.ATTRIBUTES/VARIABLE_VALUE")


def translations(run_dir, *overrides):
    keras.backend.clear_session()
    return load_run(run_dir, list(overrides)).decode(SOURCES)


def test_training_steps_is_exact_and_the_last_step_is_validated(tmp_path):
    config = tiny(user_tsv(tmp_path), "training.steps=7", "training.eval_every=5")
    train(config, tmp_path / "run")
    assert checkpoint_value(tmp_path / "run", "optimizer/_iterations") == 7
    assert checkpoint_value(tmp_path / "run", "batches") == 7
    assert checkpoint_value(tmp_path / "run", "stop_reason") == b"all steps done"
    history = (tmp_path / "run" / "validation.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in history] == [5, 7]


def test_a_run_opens_after_its_data_and_itself_have_moved(tmp_path, capsys, monkeypatch):
    train_file = user_tsv(tmp_path)
    train(tiny(train_file, "training.precision=auto"), tmp_path / "run")
    # The run records the precision `auto` chose; opening it probes nothing.
    recorded = config_lib.load(tmp_path / "run" / "config.yaml").training.precision
    assert recorded in ("float32", "mixed_bfloat16")
    before = translations(tmp_path / "run")

    shutil.move(tmp_path / "run", tmp_path / "elsewhere")
    shutil.rmtree(tmp_path / "data")
    source = tmp_path / "in.txt"
    source.write_text("\n".join(SOURCES) + "\n")
    output = tmp_path / "out.txt"
    assert main(["translate", str(tmp_path / "elsewhere"), "--input", str(source),
                 "--output", str(output)]) == 0
    assert output.read_text().splitlines() == before
    run = load_run(tmp_path / "elsewhere")
    assert run.precision == recorded and keras.config.dtype_policy().name == recorded
    # A file that is not UTF-8 is refused, naming the line, before anything is translated.
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"Click OK.\nSave.\nL\xf6schen\n")
    assert main(["translate", str(tmp_path / "elsewhere"), "--input", str(bad), "--output",
                 str(tmp_path / "bad.out")]) == 2
    assert "line 3 of " + str(bad) + " is not valid UTF-8 (byte 2: b'\\xf6sch')" in \
        capsys.readouterr().err
    assert not (tmp_path / "bad.out").exists()
    # Standard input streams: the lines before a bad one are translated, then it stops there.
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(bad.read_bytes())))
    assert main(["translate", str(tmp_path / "elsewhere")]) == 2
    captured = capsys.readouterr()
    assert captured.out.splitlines() == load_run(tmp_path / "elsewhere").decode(
        ["Click OK.", "Save."])
    assert "line 3 of standard input is not valid UTF-8" in captured.err
    # export needs nothing else either (its warm-up requests came from the data: none now).
    assert main(["export", str(tmp_path / "elsewhere"), str(tmp_path / "served")]) == 0
    assert "no warm-up requests in the export" in capsys.readouterr().err
    assert (tmp_path / "served" / "1" / "saved_model.pb").exists()
    # evaluate reads the one split it scores, and says which file is missing.
    assert main(["evaluate", str(tmp_path / "elsewhere")]) == 2
    assert f"{train_file} does not exist" in capsys.readouterr().err


def test_averaging_more_checkpoints_than_exist_averages_those_there(tmp_path, caplog):
    # One checkpoint (at step 3) of the 3 averaged: its weights, not the initial ones.
    train(tiny(user_tsv(tmp_path), "training.steps=3", "training.eval_every=3"), tmp_path / "run")
    last = translations(tmp_path / "run", "training.final_checkpoint=last")
    assert translations(tmp_path / "run", "training.average_checkpoints=3") == last
    assert "training.average_checkpoints=3 but" in caplog.text and "holds 1 checkpoint" in \
        caplog.text
    keras.backend.clear_session()
    untrained = trainer.Run(config_lib.load(tmp_path / "run" / "config.yaml"), tmp_path / "new",
                            print_fn=lambda *_: None)
    assert untrained.translator.translate(SOURCES) != last


def test_fine_tuning_on_other_data_keeps_the_base_vocabulary_and_weights(tmp_path):
    base = tiny(user_tsv(tmp_path))
    train(base, tmp_path / "base")
    base_outputs = translations(tmp_path / "base")
    other = user_jsonl(tmp_path)
    tune = tiny(other, "data.format=jsonl", "data.source_field=en", "data.target_field=de",
                f"training.init_checkpoint={tmp_path / 'base'}", "training.learning_rate=1e-12",
                "training.steps=1", "training.eval_every=1")
    _, lines = train(tune, tmp_path / "tuned")
    assert any(line.startswith("initialised from the best checkpoint") for line in lines)
    for side in ("source", "target"):
        assert (tmp_path / "tuned" / "tokenizer" / side / "tokenizer.json").read_bytes() == (
            tmp_path / "base" / "tokenizer" / side / "tokenizer.json").read_bytes()
    assert translations(tmp_path / "tuned") == base_outputs

    # Another vocabulary or architecture than the base run's is refused before any work.
    for override, field in (("data.vocabulary_size=200", "data.vocabulary_size"),
                            ("model.num_heads=4", "model.num_heads")):
        keras.backend.clear_session()
        with pytest.raises(ValueError, match=rf"base holds a model trained with {field}="):
            trainer.train(config_lib.apply_overrides(tune, [override]), tmp_path / "t2",
                          print_fn=lambda *_: None)
        assert not (tmp_path / "t2").exists()


@pytest.mark.parametrize("shared", [False, True])
def test_a_frozen_encoder_fine_tune_resumes_its_optimizer_and_keeps_the_encoder(tmp_path, shared):
    share = f"model.share_embeddings={str(shared).lower()}"
    train(tiny(user_tsv(tmp_path), share, "training.steps=3", "training.eval_every=3"),
          tmp_path / "base")
    keras.backend.clear_session()
    base = load_run(tmp_path / "base", ["training.final_checkpoint=last"]).model
    frozen = {w.path: np.asarray(w) for w in base.encoder_layers[0].weights}
    table = np.asarray(base.source_embedding.token_embedding.embeddings)
    tune = [share, f"training.init_checkpoint={tmp_path / 'base'}",
            "training.freeze_encoder=true", "training.eval_every=3"]
    train(tiny(user_tsv(tmp_path), *tune, "training.steps=3"), tmp_path / "tuned")
    run, lines = train(tiny(user_tsv(tmp_path), *tune, "training.steps=6"), tmp_path / "tuned")

    assert any(line.startswith("resuming from") and "at step 3" in line for line in lines)
    # The optimizer came back with its step (compiled anew, it counted from 0 again: 3).
    assert int(run.model.optimizer.iterations.numpy()) == 6
    for weight in run.model.encoder_layers[0].weights:
        np.testing.assert_array_equal(np.asarray(weight), frozen[weight.path.replace(
            run.model.name, base.name, 1)])
    tuned_table = np.asarray(run.model.source_embedding.token_embedding.embeddings)
    assert np.array_equal(tuned_table, table) != shared  # a shared table trains on
    assert any("token table stays trainable" in line for line in lines) == shared


def test_every_choice_field_with_a_typo_is_refused_before_anything_is_written(tmp_path, capsys):
    config_file = tmp_path / "mine.yaml"
    config_lib.save(tiny(user_tsv(tmp_path)), config_file)
    existing = tmp_path / "existing"
    existing.mkdir()
    shutil.copy(config_file, existing / "config.yaml")
    for key, names in config_lib.CHOICES.items():
        typo = names[0] + "x"
        for run_dir in (tmp_path / "new", existing):
            start = time.perf_counter()
            code = main(["train", str(config_file), "--run-dir", str(run_dir),
                         "--set", f"{key}={typo}"])
            assert code == 2 and time.perf_counter() - start < 10
            assert capsys.readouterr().err == (
                f"seq2seq train: error: --set: {key}={typo!r}; expected one of "
                f"{', '.join(names)}{' or null' if key in NULLABLE else ''}.\n")
    assert not (tmp_path / "new").exists()
    assert (existing / "config.yaml").read_bytes() == config_file.read_bytes()
    assert [p.name for p in existing.iterdir()] == ["config.yaml"]


NULLABLE = ("data.dataset", "export.quantize", "tuning.objective")


def test_data_with_every_pair_over_max_length_is_refused_within_seconds(tmp_path):
    long = " ".join(["Choose Tools - Options - LibreOffice Writer - Formatting Aids."] * 4)
    path = tmp_path / "long.tsv"
    path.write_text("".join(f"{long} {i}\t{long} {i}\n" for i in range(50)))
    start = time.perf_counter()
    with pytest.raises(ValueError, match=rf"{path}: all 50 training pairs are longer than "
                                         r"model.max_length=16 tokens, none is left"):
        train(tiny(path, "model.max_length=16", "decoding.max_length=16",
                   "data.vocabulary_size=100"), tmp_path / "run")
    assert time.perf_counter() - start < 60
    # Some dropped: the share is printed where the CLI shows it.
    short = tmp_path / "mixed.tsv"
    short.write_text(path.read_text() + "".join(f"Click {i}.\tKlicken {i}.\n" for i in range(50)))
    _, lines = train(tiny(short, "model.max_length=16", "decoding.max_length=16",
                   "data.vocabulary_size=100",
                          "training.steps=1"), tmp_path / "run2")
    assert "dropped 50 of 100 training pairs (50.0%) longer than model.max_length=16 tokens" \
        in lines


def test_a_run_stopped_early_stays_finished_and_its_counter_resumes(tmp_path):
    config = tiny(user_tsv(tmp_path), "training.steps=6", "training.eval_every=3")
    run, _ = train(config, tmp_path / "run")
    # As if validation had not improved twice and patience had run out at step 6.
    run.checkpoints.bad_validations.assign(2)
    run.checkpoints.stop_reason.assign("early stopping")
    run.checkpoints.save(6)
    resumed, lines = train(config_lib.apply_overrides(config, ["training.steps=12"]),
                           tmp_path / "run")
    assert lines[-1] == "training already finished at step 6 (early stopping)"
    assert int(resumed.checkpoints.bad_validations.numpy()) == 2


def test_augmented_training_samples_and_noises_only_the_training_batches(tmp_path):
    # Subword regularization on both sides and source noise: training runs on them, while
    # validation, test and the run opened for inference segment and read sources as they are.
    augmented = ["data.subword_alpha=0.2", "data.subword_targets=true", "data.noise_drop=0.1",
                 "data.noise_blank=0.1", "data.noise_shuffle_distance=3"]
    run, _ = train(tiny(user_tsv(tmp_path), *augmented, "training.steps=2",
                        "training.eval_every=2"), tmp_path / "run")
    assert run.source_tokenizer.sampling is None and run.target_tokenizer.sampling is None
    opened = load_run(tmp_path / "run")
    assert opened.config.data.subword_alpha == 0.2
    assert opened.source_tokenizer.sampling is None
    text = ["Choose Tools - Options."]
    assert all(opened.source_tokenizer.tokenize(text).to_list() == opened.source_tokenizer
               .tokenize(text).to_list() for _ in range(3))
