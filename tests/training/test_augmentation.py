"""Back-translation and denoising pretraining as a user runs them, on files the user wrote: a
reverse run back-translates a text file into a TSV that training reads with the real pairs; a
denoising run pretrains a model that a translation fine-tune starts from, vocabulary and
weights."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq import config as config_lib
from seq2seq.cli import main
from seq2seq.data import readers
from seq2seq.run_directory import load_run
from seq2seq.training import inputs, trainer

from .conftest import FIXTURE_TSV
from .test_recipes import train_scalars
from .test_user_paths import tiny, user_tsv

GERMAN = ["Wählen Sie Extras - Optionen.", "Klicken Sie auf OK.", "",
          "Speichern\tSie das Dokument.", "Drucken Sie die Seite."]


def fresh_train(config, run_dir):
    keras.backend.clear_session()
    return trainer.train(config, run_dir, print_fn=lambda *_: None)


def test_backtranslate_writes_a_pair_a_line_that_training_mixes_in(tmp_path, capsys):
    train_file = user_tsv(tmp_path)
    reverse = fresh_train(tiny(train_file, "data.reverse=true", "training.steps=2"),
                          tmp_path / "reverse")
    assert inputs.load_split(reverse.config.data, "train")[0] == tuple(
        reversed(readers.read_tsv(train_file)[0]))
    mono = tmp_path / "mono.de.txt"
    mono.write_text("\n".join(GERMAN) + "\n", encoding="utf-8")
    out = tmp_path / "synthetic.tsv"
    assert main(["backtranslate", str(tmp_path / "reverse"), str(mono), str(out)]) == 0
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    # One pair a text line (the blank line is not a text), the text as the target, the
    # reverse run's own translation as the source, in the file's order.
    texts = [" ".join(t.split()) for t in GERMAN if t]
    pairs = readers.read_tsv(out, on_error="error")
    translations = load_run(tmp_path / "reverse").decode(texts)
    expected = [(s, t) for s, t in zip(translations, texts) if s.strip()]
    assert pairs == expected and report["pairs"] == len(expected)
    assert report["texts"] == 4 and report["empty_skipped"] == 4 - len(expected)
    assert out.read_text().count("\n") == len(expected)

    # Training reads the real pairs, then the synthetic ones, each tagged once; the tag is one
    # token of the vocabulary learned with it.
    forward = tiny(train_file, f"data.synthetic_file={out}", "data.synthetic_tag=<BT>",
                   "training.steps=2")
    real = readers.read_tsv(train_file)
    mixed = inputs.load_split(forward.data, "train")
    assert mixed[:len(real)] == real
    assert sorted(mixed[len(real):]) == sorted((f"<BT> {s}", t) for s, t in pairs)
    run = fresh_train(forward, tmp_path / "forward")
    tag = run.source_tokenizer.token_id("<BT>")
    assert tag is not None and tag > 3
    ids = run.source_tokenizer.tokenize([mixed[-1][0]]).numpy()[0]
    assert tag in ids and list(ids).count(tag) == 1


def test_the_synthetic_ratio_cuts_or_repeats_the_synthetic_pairs(tmp_path):
    synthetic = user_tsv(tmp_path, "synthetic.tsv", start=300, count=10)
    train_file = user_tsv(tmp_path, count=40)
    pairs = readers.read_tsv(synthetic)
    for ratio, count in ((None, 10), (0.1, 4), (0.5, 20), (1.0, 40)):
        config = tiny(train_file, f"data.synthetic_file={synthetic}",
                      f"data.synthetic_ratio={'null' if ratio is None else ratio}")
        added = inputs.load_split(config.data, "train")[40:]
        assert len(added) == count
        # Cut: distinct pairs of the file; repeated: each pair as often as any other, +-1.
        counts = [added.count(p) for p in pairs]
        assert set(added) <= set(pairs) and max(counts) - min(counts) <= 1


def test_a_tag_the_vocabulary_lacks_is_refused_before_training(tmp_path):
    train_file = user_tsv(tmp_path)
    fresh_train(tiny(train_file, "training.steps=1"), tmp_path / "base")
    tuned = tiny(train_file, f"data.synthetic_file={train_file}", "data.synthetic_tag=<BT>",
                 f"training.init_checkpoint={tmp_path / 'base'}", "training.steps=1")
    with pytest.raises(ValueError, match="data.synthetic_tag='<BT>' is not a token of the "
                                         "vocabulary"):
        fresh_train(tuned, tmp_path / "tuned")


def test_pretraining_then_fine_tuning_keeps_the_vocabulary_and_starts_from_the_weights(
        tmp_path):
    pairs = readers.read_tsv(FIXTURE_TSV)[:300]
    texts = tmp_path / "texts.txt"
    texts.write_text("".join(f"{s}\n{t}\n" for s, t in pairs), encoding="utf-8")
    pretrain = tiny(texts, "data.task=denoising", "data.format=text", "training.steps=4",
                    "training.label_smoothing=0", "model.max_length=32",
                    "decoding.max_length=32")
    fresh_train(pretrain, tmp_path / "pretrained")
    train_file = user_tsv(tmp_path)
    tune = tiny(train_file, f"training.init_checkpoint={tmp_path / 'pretrained'}",
                "training.steps=1", "training.eval_every=1", "training.label_smoothing=0",
                "training.learning_rate=0.01", "model.max_length=32", "decoding.max_length=32")
    run = fresh_train(tune, tmp_path / "tuned")
    assert inputs.directory_files(tmp_path / "tuned" / "tokenizer") == \
        inputs.directory_files(tmp_path / "pretrained" / "tokenizer")
    assert run.source_tokenizer.token_id("<mask>") is not None

    # The loss of the fine-tune's first step (before its update) is the pretrained model's
    # loss on that batch, computed here with Keras' own cross-entropy.
    first_loss = train_scalars(tmp_path / "tuned" / "logs" / "train")["loss"][0]
    keras.backend.clear_session()
    pretrained = load_run(tmp_path / "pretrained")
    batch = inputs.train_dataset(tune.data, inputs.load_split(tune.data, "train"),
                                 pretrained.source_tokenizer, pretrained.target_tokenizer, 32)
    (source, target_in), target_out, weights = next(iter(batch))
    logits = pretrained.model((source, target_in), training=False)
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
        target_out, tf.cast(logits, tf.float32), sample_weight=weights) * np.prod(
        weights.shape) / float(tf.reduce_sum(weights))
    assert first_loss == pytest.approx(float(expected), rel=1e-4)


def test_denoising_validation_rebuilds_corrupted_copies(tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("".join(f"{t}\n" for _, t in readers.read_tsv(FIXTURE_TSV)[:200]))
    config = tiny(texts, "data.task=denoising", "data.format=text", "training.steps=1")
    run = fresh_train(config, tmp_path / "run")
    pairs = inputs.evaluation_pairs(config.data, "valid", run.source_tokenizer, 50)
    references = [t for _, t in inputs.load_split(config.data, "valid")[:50]]
    assert [t for _, t in pairs] == references
    assert sum("<mask>" in s for s, _ in pairs) >= 40
    # The same copies at every validation: seeded by the split.
    assert pairs == inputs.evaluation_pairs(config.data, "valid", run.source_tokenizer, 50)
    history = (tmp_path / "run" / "validation.jsonl").read_text().splitlines()
    assert "bleu" in json.loads(history[-1])


@pytest.mark.parametrize("settings, message", [
    (["data.task=translation", "data.dataset=manpages"], "is monolingual text"),
    (["data.task=denoising", "data.noise_drop=0.1"], "data.noise_drop with data.task"),
    (["data.task=denoising", "data.tokenizer=wordpiece"], "kept whole in text by "),
    (["data.format=text"], "data.format='text' (one text a line, no pairs)"),
    (["data.synthetic_tag=<BT>"], "without data.synthetic_file"),
    (["data.task=densoising"], "expected one of translation, summarization, denoising"),
])
def test_augmentation_settings_that_cannot_work_are_refused_at_load(settings, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config_lib.load(None, settings)


def test_denoising_reads_several_text_files_through_a_pattern(tmp_path):
    (tmp_path / "mono").mkdir()
    (tmp_path / "mono" / "b.de.txt").write_text("Zweite Datei.\nNoch ein Satz.\n")
    (tmp_path / "mono" / "a.en.txt").write_text("First file.\n\nAnother line.\n")
    config = tiny(tmp_path / "mono" / "*.txt", "data.task=denoising", "data.format=text")
    assert inputs.load_split(config.data, "train") == [
        (t, t) for t in ("First file.", "Another line.", "Zweite Datei.", "Noch ein Satz.")]
    missing = tiny(tmp_path / "none" / "*.txt", "data.task=denoising", "data.format=text")
    with pytest.raises(FileNotFoundError, match=r"data.train_file='.*none/\*.txt' matches no file"):
        inputs.load_split(missing.data, "train")
