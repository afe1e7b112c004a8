"""Each recipe's real config, shrunk: train -> evaluate -> translate -> export."""

import io
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from seq2seq.cli import main
from seq2seq.training.trainer import HPARAMS


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def train_scalars(log_dir):
    """{tag: [values]} of the scalar summaries in a TensorBoard log directory."""
    import tensorflow as tf

    scalars = {}
    for path in log_dir.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") \
                    else value.simple_value
                scalars.setdefault(value.tag, []).append(number)
    return scalars


def hparams_of(log_dir):
    """{name: value} the hparams dashboard shows of a run (its session-start summary)."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import plugin_data_pb2

    for path in log_dir.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name != "hparams":
                    continue
                data = plugin_data_pb2.HParamsPluginData.FromString(
                    value.metadata.plugin_data.content)
                if data.HasField("session_start_info"):
                    return {name: (v.number_value if v.HasField("number_value") else
                                   v.string_value if v.HasField("string_value") else v.bool_value)
                            for name, v in data.session_start_info.hparams.items()}
    raise AssertionError(f"no hparams summary in {log_dir}")


@pytest.mark.parametrize("recipe", ["translation", "summarization"])
def test_recipe_trains_evaluates_translates_and_exports(tmp_path, capsys, monkeypatch, shrunk,
                                                       recipe):
    config = shrunk(recipe, tmp_path)
    run_dir = tmp_path / "run"
    out = run_cli(capsys, "train", str(config), "--run-dir", str(run_dir))
    summary = json.loads(out.strip().splitlines()[-1])
    metric_names = (["test_bleu", "test_chrf"] if recipe == "translation"
                    else ["test_rouge1", "test_rouge2", "test_rougeLsum"])
    for name in metric_names:
        assert math.isfinite(summary[name]) and summary[name] >= 0
    assert summary["run_dir"] == str(run_dir)
    assert "validation at step 3" in out and "validation at step 6" in out
    assert "(nrefs:1|case:mixed|eff:" in out or "rouge-score|F1" in out  # signature printed
    # Everything the run leaves behind.
    assert (run_dir / "config.yaml").exists()
    assert (run_dir / "tokenizer" / "source" / "tokenizer.json").exists()
    assert list((run_dir / "logs" / "valid").glob("events.out.tfevents.*"))
    scalars = train_scalars(run_dir / "logs" / "train")
    for tag in ("loss", "accuracy", "learning_rate", "gradient_norm", "tokens_per_second"):
        assert scalars.get(tag) and all(math.isfinite(v) for v in scalars[tag]), tag
    assert all(v > 0 for v in scalars["gradient_norm"])
    assert (run_dir / "checkpoints" / "checkpoint").exists()
    assert (run_dir / "export" / "1" / "saved_model.pb").exists()
    history = [json.loads(line) for line in (run_dir / "validation.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [3, 6]
    # The hparams dashboard: the fields that decide a model, sizes as built from `tiny`.
    shown = hparams_of(run_dir / "logs" / "hparams")
    assert sorted(shown) == sorted(HPARAMS)
    assert (shown["model.hidden_dim"], shown["model.num_heads"], shown["model.intermediate_dim"],
            shown["training.precision"], shown["training.steps"]) == (32, 2, 64, "float32", 6)

    # evaluate and translate from the run directory.
    evaluated = json.loads(run_cli(capsys, "evaluate", str(run_dir)).strip().splitlines()[-1])
    assert set(evaluated) == {name for name in metric_names}
    # score: a user's pairs file (TSV, or JSONL with the run's fields), a line per pair: the
    # total log-probability and each target token's, as Translator.score gives them.
    from seq2seq.run_directory import load_run

    pairs = [("Choose Tools - Options.", "Wählen Sie Extras - Optionen."),
             ("Insert a sheet.", "Tabelle einfügen.")]
    data = load_run(run_dir).config.data
    if data.format == "jsonl":
        pairs_file = tmp_path / "pairs.jsonl"
        pairs_file.write_text("".join(json.dumps({data.source_field: s, data.target_field: t})
                                      + "\n" for s, t in pairs), "utf-8")
    else:
        pairs_file = tmp_path / "pairs.tsv"
        pairs_file.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), "utf-8")
    lines = run_cli(capsys, "score", str(run_dir), str(pairs_file)).splitlines()[-2:]
    expected = load_run(run_dir).translator.score([s for s, _ in pairs], [t for _, t in pairs])
    for line, (total, tokens) in zip(lines, expected, strict=True):
        written_total, written_tokens = line.split("\t")
        assert float(written_total) == pytest.approx(total, abs=1e-4)
        np.testing.assert_allclose([float(x) for x in written_tokens.split()], tokens, atol=1e-4)
    source = tmp_path / "in.txt"
    source.write_text("Choose Tools - Options.\nInsert a sheet.\n\n")
    output = tmp_path / "out.txt"
    run_cli(capsys, "translate", str(run_dir), "--input", str(source), "--output", str(output))
    assert len(output.read_text().splitlines()) == 3
    # From standard input to standard output (`translate RUN < in > out`): the output holds the
    # translations and nothing else; what the run reports goes to standard error.
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(source.read_bytes())))
    assert main(["translate", str(run_dir)]) == 0
    assert capsys.readouterr().out == output.read_text()
    # decoding.n_best=2 with scores: two 'SCORE ||| TEXT' lines per input, best first, the
    # best being the one-best translation.
    run_cli(capsys, "translate", str(run_dir), "--input", str(source), "--output",
            str(tmp_path / "nbest.txt"), "--with-scores", "--set", "decoding.n_best=2")
    lines = [line.split(" ||| ", 1) for line in (tmp_path / "nbest.txt").read_text().split("\n")]
    assert len(lines) == 7 and lines[-1] == [""]  # 3 x 2 lines and the final newline
    scores = [float(score) for score, _ in lines[:-1]]
    assert all(scores[i] >= scores[i + 1] for i in (0, 2, 4))
    assert [text for _, text in lines[:-1:2]] == output.read_text().split("\n")[:-1]

    if recipe == "translation":
        check_decoding_controls(capsys, monkeypatch, tmp_path, run_dir, source)

    # The export serves the same strings as translate(), in a process without seq2seq.
    probe = (
        "import json, sys, tensorflow as tf, tensorflow_text\n"
        f"m = tf.saved_model.load({str(run_dir / 'export' / '1')!r})\n"
        "out = m.signatures['serving_default'](text=tf.constant(['Choose Tools - Options.', "
        "'Insert a sheet.', '']))\n"
        "print(json.dumps([t[0].decode() for t in out['translations'].numpy().tolist()]))\n"
    )
    served = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True).stdout.strip().splitlines()[-1]
    assert json.loads(served) == output.read_text().splitlines()


def test_cli_reports_bad_config_clearly(tmp_path, capsys, shrunk):
    config = shrunk("translation", tmp_path)
    code = main(["train", str(config), "--run-dir", str(tmp_path / "r"),
                 "--set", "training.optimizer=sgd"])
    assert code == 2
    assert "training.optimizer='sgd'; expected one of adam, adamw." in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_max_source_length_cuts_sources_alike_in_training_and_decoding(tmp_path, shrunk):
    from seq2seq import config as config_lib
    from seq2seq.text.tokenizer import END_ID
    from seq2seq.training import inputs
    from seq2seq.training.trainer import Run

    path = shrunk("summarization", tmp_path, data={"max_source_length": 12})
    config = config_lib.load(path)
    run = Run(config, tmp_path / "run", print_fn=lambda *_: None)
    pairs = run.train_pairs
    whole = run.source_tokenizer.tokenize([s for s, _ in pairs]).row_lengths().numpy()
    assert (whole >= 12).sum() > len(pairs) // 2  # most fixture descriptions are longer
    batches = inputs.train_dataset(config.data, pairs, run.source_tokenizer,
                                   run.target_tokenizer, config.model.max_length)
    lengths = [int(source.shape[1]) for (source, _), _, _ in batches.take(20)]
    assert max(lengths) == 12
    # The translator (validation, test, export) cuts the same way: 11 pieces and the end id.
    ids = run.translator.encode_sources([pairs[0][0]]).numpy()[0]
    expected = run.source_tokenizer.tokenize([pairs[0][0]])[0][:11].numpy().tolist()
    assert ids.tolist() == expected + [END_ID]


def test_train_takes_a_packaged_recipe_by_name(tmp_path, capsys):
    # `seq2seq train translation` from a folder that has no recipes/: the package's config,
    # shrunk by --set to a tiny model on the fixture.
    from seq2seq import config as config_lib
    from tests.training.conftest import FIXTURE_TSV

    sets = ["model.size=tiny", "model.max_length=48", "data.dataset=null", "data.format=tsv",
            *(f"data.{split}_file={FIXTURE_TSV}" for split in ("train", "valid", "test")),
            "data.vocabulary_size=300", "data.tokenizer_train_pairs=400", "data.batch_tokens=768",
            "training.steps=2", "training.eval_every=2", "training.valid_sentences=4",
            "training.time_budget_minutes=null", "training.precision=float32",
            "decoding.beam_size=1", "decoding.max_length=8", "export.enabled=false"]
    code = main(["train", "translation", "--run-dir", str(tmp_path / "run"),
                 *(part for value in sets for part in ("--set", value))])
    assert code == 0, capsys.readouterr().err[-2000:]
    written = config_lib.load(tmp_path / "run" / "config.yaml")
    assert written == config_lib.load("translation", sets)
    # What the recipe sets and the defaults do not: the recipe was read.
    assert written.training.schedule != config_lib.load(None).training.schedule


def test_recipes_lists_each_packaged_recipe_on_one_line(capsys):
    assert main(["recipes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["finetune_opus_mt", "pretrain", "summarization",
                                                   "translation", "translation_base", "tuning"]
    assert lines[1].split(None, 1)[1] == ("Denoising pretraining (BART-style) on monolingual "
                                          "text, for a translation fine-tune after it.")
    assert lines[3].split(None, 1)[1] == (
        "Translation: LibreOffice help EN->DE on a 2-core CPU in under 15 minutes (quickstart).")


def check_decoding_controls(capsys, monkeypatch, tmp_path, run_dir, source):
    """`translate --prefix-file --constraints-file --with-alignments` writes, per input line, a
    JSON object of what `translate(..., return_alignments=True)` returns; the strategy is the
    one built from the config, in the CLI, translate() and the export alike."""
    import tensorflow as tf

    from seq2seq.decoding import from_config
    from seq2seq.decoding.translator import Translator
    from seq2seq.run_directory import load_run

    run = load_run(run_dir)
    texts = source.read_text().splitlines()
    prefixes, terms = ["Wählen", "", ""], [["Optionen"], [], ["Tabelle", "Extras"]]
    (tmp_path / "prefixes.txt").write_text("".join(p + "\n" for p in prefixes), "utf-8")
    (tmp_path / "terms.jsonl").write_text('["Optionen"]\n\n["Tabelle", "Extras"]\n', "utf-8")
    used = []
    translate = Translator.translate
    monkeypatch.setattr(Translator, "translate", lambda self, texts, strategy=None, **kw: (
        used.append(strategy), translate(self, texts, strategy, **kw))[1])
    run_cli(capsys, "translate", str(run_dir), "--input", str(source), "--output",
            str(tmp_path / "controlled.jsonl"), "--prefix-file", str(tmp_path / "prefixes.txt"),
            "--constraints-file", str(tmp_path / "terms.jsonl"), "--with-alignments")
    monkeypatch.undo()
    rows = [json.loads(line) for line in (tmp_path / "controlled.jsonl").read_text().splitlines()]
    assert rows == run.translate(texts, prefixes=prefixes, constraints=terms,
                                 return_alignments=True)
    assert rows[0]["translation"].startswith("Wählen")
    assert all(row["constraints_met"] for row in rows)
    assert "Optionen" in rows[0]["translation"] and "Extras" in rows[2]["translation"]
    # One strategy, built from the config: the CLI's, translate()'s and the export's.
    expected = from_config(run.config.decoding).get_config()
    assert [s.get_config() for s in used] == [expected]
    assert run.translator.strategy.get_config() == expected
    exported = tf.saved_model.load(str(run_dir / "export" / "1"))
    assert json.loads(exported.strategy_config.numpy().decode()) == expected
    # A bad line of the constraints file is refused, by its number, before anything runs.
    (tmp_path / "bad.jsonl").write_text('["Optionen"]\n{"Optionen": 1}\n\n', "utf-8")
    assert main(["translate", str(run_dir), "--input", str(source), "--constraints-file",
                 str(tmp_path / "bad.jsonl")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "line 2 of" in captured.err and "expected a JSON list of target phrases" in captured.err
    (tmp_path / "short.txt").write_text("Wählen\n", "utf-8")
    assert main(["translate", str(run_dir), "--input", str(source), "--prefix-file",
                 str(tmp_path / "short.txt")]) == 2
    assert "--prefix-file has 1 lines for 3 input lines" in capsys.readouterr().err
