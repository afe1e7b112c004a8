"""The `seq2seq` command line: thin wrappers over the library.

    seq2seq train CONFIG.yaml --run-dir DIR [--set training.steps=2000 ...]
    seq2seq evaluate DIR [--split test]
    seq2seq translate DIR [--input FILE] [--output FILE] [--with-scores] [--prefix-file FILE]
                          [--constraints-file FILE] [--with-alignments]
    seq2seq score DIR PAIRS.tsv
    seq2seq export DIR OUT_DIR
    seq2seq tune CONFIG.yaml --run-dir DIR
    seq2seq import-marian MODEL_DIR RUN_DIR [--max-length N] [--source-prefix ">>deu<<"]
    seq2seq backtranslate RUN_DIR MONO.txt OUT.tsv [--strategy sampling] [--limit N]
                          [--max-minutes M]
"""

import argparse
import json
import logging
import os
import pathlib
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _print(*args):
    print(*args, flush=True)


def _train(args):
    from seq2seq import config as config_lib
    from seq2seq.training.trainer import train_and_evaluate

    config = config_lib.load(args.config, args.set)
    summary = train_and_evaluate(config, args.run_dir, print_fn=_print)
    _print(json.dumps(summary))


def _print_to_stderr(*args):
    print(*args, file=sys.stderr, flush=True)


def _open_run(args):
    from seq2seq.run_directory import load_run

    return load_run(args.run_dir, args.set)


def _open_translator(args):
    """A run directory, or a CTranslate2 export (`export --format ctranslate2`)."""
    from seq2seq.export.ctranslate2 import CTranslate2Translator, is_ctranslate2_directory

    if is_ctranslate2_directory(args.run_dir):
        return CTranslate2Translator(args.run_dir, args.set)
    return _open_run(args)


def _evaluate(args):
    from seq2seq.run_directory import evaluate

    scores, examples = evaluate(_open_run(args), args.split)
    for score in scores.values():
        _print(repr(score))
    _print(json.dumps({f"{args.split}_{n}": round(float(s), 2) for n, s in scores.items()}))


def _input_lines(args):
    """`(number, text)` of the input lines. A file is checked whole before anything is
    translated; standard input streams, and a line that is not UTF-8 stops it there (the
    lines before it are translated and written)."""
    if args.input:
        yield from enumerate(_file_lines(args.input), start=1)
        return
    for number, line in enumerate(sys.stdin.buffer, start=1):
        yield number, _utf8(line.rstrip(b"\r\n"), number, "standard input")


def _file_lines(path):
    """A UTF-8 text file's lines (a byte-order mark dropped), every line checked first."""
    with open(path, "rb") as raw:
        data = raw.read().removeprefix(b"\xef\xbb\xbf").splitlines()
    return [_utf8(line, number, path) for number, line in enumerate(data, start=1)]


def _utf8(line, number, where):
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"line {number} of {where} is not valid UTF-8 (byte "
                         f"{error.start + 1}: {line[error.start:error.start + 4]!r}); expected "
                         "UTF-8 text, one sentence a line.") from None


FLAGS = {"prefixes": "--prefix-file", "constraints": "--constraints-file"}


def _controls(args):
    """`{"prefixes": [...], "constraints": [...]}` from --prefix-file (one target prefix a
    line) and --constraints-file (one JSON list of phrases a line), each read and checked whole
    before anything is translated."""
    controls = {}
    if args.prefix_file:
        controls["prefixes"] = _file_lines(args.prefix_file)
    if args.constraints_file:
        controls["constraints"] = []
        for number, text in enumerate(_file_lines(args.constraints_file), start=1):
            try:
                phrases = json.loads(text) if text.strip() else []
            except json.JSONDecodeError as error:
                phrases = error
            if not (isinstance(phrases, list) and all(isinstance(p, str) for p in phrases)):
                raise ValueError(f"line {number} of {args.constraints_file} is {text[:60]!r}; "
                                 'expected a JSON list of target phrases, e.g. ["Extras", '
                                 '"Optionen"] ([] or an empty line: none).')
            controls["constraints"].append(phrases)
    return controls


def _translate(args):
    # Standard output carries the translations only, one line per input line (n_best lines
    # with decoding.n_best > 1; with --with-alignments a JSON object per hypothesis): what the
    # run reports goes to standard error.
    controls = _controls(args)
    run = _open_translator(args)
    if (controls or args.with_alignments) and not hasattr(run, "model"):  # CTranslate2
        raise ValueError(f"--prefix-file, --constraints-file and --with-alignments on the "
                         f"CTranslate2 export {args.run_dir}; expected a run directory.")
    lines = _input_lines(args)
    if args.input:
        lines = list(lines)  # a bad line stops the command before any translation
        for name, values in controls.items():
            if len(values) != len(lines):
                raise ValueError(f"{FLAGS[name]} has {len(values)} lines for {len(lines)} "
                                 "input lines; expected one line per input line.")
    output = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    strategy = run.strategy
    batch, numbers = [], []

    def flush():
        # With n_best > 1, each input's hypotheses follow one another, best first.
        options = {name: [values[n - 1] for n in numbers] for name, values in controls.items()}
        if args.with_alignments:
            options["return_alignments"] = True
        results = run.translate(batch, strategy, return_scores=args.with_scores, **options)
        for result in results:
            for hypothesis in result if strategy.n_best > 1 else [result]:
                if args.with_alignments:
                    hypothesis = json.dumps(hypothesis, ensure_ascii=False)
                elif args.with_scores:
                    text, score = hypothesis
                    hypothesis = f"{score:.4f} ||| {text}"
                output.write(hypothesis + "\n")
        output.flush()
        batch.clear()
        numbers.clear()

    try:
        for number, line in lines:  # streaming: a batch is written as soon as it is full
            for name, values in controls.items():
                if number > len(values):
                    raise ValueError(f"input line {number} has no line in {FLAGS[name]} "
                                     f"({len(values)} lines); expected one per input line.")
            batch.append(line)
            numbers.append(number)
            if len(batch) == args.batch_size:
                flush()
    finally:  # a bad line of standard input ends the stream: what came before is written
        if batch:
            flush()


def _score(args):
    # One line per pair: its total log-probability, a tab, each target token's (the end last).
    from seq2seq.training import inputs

    run = _open_run(args)
    pairs = inputs.read_pairs(run.config.data, args.pairs, on_error="error",
                              format="jsonl" if args.pairs.endswith(".jsonl") else "tsv")
    output = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    for total, tokens in run.translator.score([s for s, _ in pairs], [t for _, t in pairs],
                                              batch_size=args.batch_size):
        output.write(f"{total:.4f}\t{' '.join(f'{p:.4f}' for p in tokens)}\n")
    output.flush()


def _export(args):
    from seq2seq.export import FORMATS
    from seq2seq.export.saved_model import export_translator
    from seq2seq.run_directory import load_run
    from seq2seq.training import inputs

    overrides = [*args.set, *([f"export.format={args.format}"] if args.format else []),
                 *([f"export.quantize={args.quantize}"] if args.quantize else [])]
    run = load_run(args.run_dir, overrides)
    formats = FORMATS[run.config.export.format]
    if formats == ("ctranslate2",):  # OUT_DIR is the CTranslate2 directory itself
        _print(json.dumps({"export_ctranslate2": str(_export_ctranslate2(run, args.out_dir))}))
        return
    try:  # TF Serving replays a few real requests at load; a run that moved has none to give
        warmup = [source for source, _ in inputs.load_split(run.config.data, "valid")[:3]]
    except (FileNotFoundError, ValueError) as error:
        _print_to_stderr(f"no warm-up requests in the export: {error}")
        warmup = []
    path = export_translator(run.translator, args.out_dir,
                             version=run.config.export.version, warmup_texts=warmup,
                             quantize=run.config.export.quantize, limits=run.config.export)
    summary = {"export": str(path)}
    if "ctranslate2" in formats:
        summary["export_ctranslate2"] = str(
            _export_ctranslate2(run, pathlib.Path(args.out_dir) / "ctranslate2"))
    _print(json.dumps(summary))


def _export_ctranslate2(run, out_dir):
    from seq2seq.export.ctranslate2 import export_ctranslate2

    return export_ctranslate2(run.model, run.source_tokenizer, run.target_tokenizer, run.config,
                              out_dir, quantize=run.config.export.quantize)


def _tune(args):
    from seq2seq import config as config_lib
    from seq2seq.tuning.search import tune

    summary = tune(config_lib.load(args.config, args.set), args.run_dir, print_fn=_print)
    _print(json.dumps(summary))


def _import_marian(args):
    from seq2seq.convert import import_marian

    run_dir = import_marian(args.model_dir, args.run_dir, max_length=args.max_length,
                            source_prefix=args.source_prefix)
    _print(f"imported {args.model_dir} into {run_dir}")


def _backtranslate(args):
    # Everything is checked before anything is translated: the run, the text file, the output.
    from seq2seq.data import readers
    from seq2seq.data.backtranslation import backtranslate, write_tsv

    out = pathlib.Path(args.output)
    if out.is_dir() or not out.parent.is_dir():
        raise ValueError(f"OUT.tsv={args.output!r}; expected a file path in an existing "
                         "directory.")
    from seq2seq.run_directory import load_run

    texts = readers.read_texts(args.texts)[: args.limit]
    overrides = [*args.set, *([f"decoding.strategy={args.strategy}"] if args.strategy else [])]
    run = load_run(args.run_dir, overrides)
    pairs, skipped = backtranslate(run.translator, texts, max_minutes=args.max_minutes,
                                   print_fn=_print_to_stderr)
    write_tsv(out, pairs)
    _print(json.dumps({"pairs": len(pairs), "texts": len(texts), "empty_skipped": skipped,
                       "output": str(out)}))


def _demo(args):
    """Trains a tiny Transformer to reverse digit strings and reports its token accuracy."""
    import keras
    import numpy as np

    from seq2seq.models import Transformer

    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    lengths = rng.integers(3, 9, size=args.examples)
    source = np.zeros((args.examples, 8), "int32")
    target = np.zeros((args.examples, 10), "int32")
    for row, length in enumerate(lengths):  # ids: 0 pad, 1 start, 2 end, 3..12 digits
        digits = rng.integers(3, 13, size=length)
        source[row, :length] = digits
        target[row, : length + 2] = [1, *digits[::-1], 2]
    model = Transformer.from_size("tiny", source_vocabulary_size=13, target_vocabulary_size=13,
                                  dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  weighted_metrics=["sparse_categorical_accuracy"])
    labels = target[:, 1:]
    history = model.fit((source, target[:, :-1]), labels, sample_weight=(labels != 0) * 1.0,
                        batch_size=64, epochs=args.epochs, validation_split=0.1, verbose=2)
    accuracy = history.history["val_sparse_categorical_accuracy"][-1]
    _print(json.dumps({"val_token_accuracy": round(accuracy, 4)}))


def _recipes(args):
    from seq2seq import recipes

    width = max(map(len, recipes.names()))
    for name in recipes.names():
        _print(f"{name:<{width}}  {recipes.describe(name)}")


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(prog="seq2seq", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    def with_overrides(command):
        command.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                             help="override a config field (repeatable)")
        return command

    train = with_overrides(commands.add_parser("train", help="train, evaluate on test, export"))
    train.add_argument("config", help="YAML config file, or a recipe's name (seq2seq recipes)")
    train.add_argument("--run-dir", required=True, help="run directory (re-run to resume)")
    train.set_defaults(run=_train)

    evaluate = with_overrides(commands.add_parser("evaluate", help="metrics of a split"))
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--split", default="test", choices=["train", "valid", "test"])
    evaluate.set_defaults(run=_evaluate)

    translate = with_overrides(commands.add_parser("translate", help="a file or stdin to stdout"))
    translate.add_argument("run_dir", help="a run directory, or a CTranslate2 export")
    translate.add_argument("--input", help="source file (default stdin), one sentence a line")
    translate.add_argument("--output", help="output file (default stdout)")
    translate.add_argument("--batch-size", type=_positive_int, default=32,
                           help="sentences decoded together (default 32)")
    translate.add_argument("--with-scores", action="store_true",
                           help="write 'SCORE ||| TRANSLATION' (the search's score)")
    translate.add_argument("--prefix-file", help="target prefixes, one per input line: each "
                                                  "translation continues its line's text")
    translate.add_argument("--constraints-file",
                           help='target phrases each translation must contain: a JSON list '
                                'per input line, e.g. ["Extras", "Optionen"] (beam search)')
    translate.add_argument("--with-alignments", action="store_true",
                           help="write a JSON object per hypothesis: translation, score, "
                                "tokens, source_tokens, alignments, token_log_probs, "
                                "mean_log_prob, min_prob (and constraints_met)")
    translate.set_defaults(run=_translate)

    score = with_overrides(commands.add_parser(
        "score", help="log-probabilities of given translations (teacher-forced)"))
    score.add_argument("run_dir")
    score.add_argument("pairs", help="source and target per line: a TSV file, or JSONL with "
                                     "the run's data.source_field and data.target_field")
    score.add_argument("--output", help="output file (default stdout)")
    score.add_argument("--batch-size", type=_positive_int, default=32,
                       help="pairs scored together (default 32)")
    score.set_defaults(run=_score)

    export = with_overrides(commands.add_parser(
        "export", help="SavedModel for TF Serving, or a CTranslate2 model"))
    export.add_argument("run_dir")
    export.add_argument("out_dir")
    export.add_argument("--format", choices=["saved_model", "ctranslate2", "both"],
                        help="export.format: saved_model (OUT_DIR/<version>), ctranslate2 "
                             "(OUT_DIR itself) or both (OUT_DIR/<version>, OUT_DIR/ctranslate2)")
    export.add_argument("--quantize", choices=["int8"], help="export.quantize: int8 weights")
    export.set_defaults(run=_export)

    tune = with_overrides(commands.add_parser("tune", help="hyperparameter search (KerasTuner)"))
    tune.add_argument("config", help="YAML config with a tuning section, or a recipe's name")
    tune.add_argument("--run-dir", required=True, help="search directory (re-run to continue)")
    tune.set_defaults(run=_tune)

    marian = commands.add_parser(
        "import-marian", help="an OPUS-MT / Marian checkpoint as a run directory")
    marian.add_argument("model_dir", help="an OPUS-MT release (decoder.yml, .npz, vocabulary "
                                          ".yml, source.spm, target.spm) or a Hugging Face "
                                          "Marian folder (config.json, model.safetensors, ...)")
    marian.add_argument("run_dir", help="the run directory to write (must not exist)")
    marian.add_argument("--max-length", type=_positive_int, default=256,
                        help="model.max_length: longest source and output in tokens (256)")
    marian.add_argument("--source-prefix", help='data.source_prefix: the target-language token '
                                                'of a multilingual model, e.g. ">>deu<<"')
    marian.set_defaults(run=_import_marian)

    back = with_overrides(commands.add_parser(
        "backtranslate", help="monolingual target-language text -> synthetic training pairs"))
    back.add_argument("run_dir", help="a run of the reverse direction (target -> source)")
    back.add_argument("texts", help="target-language text, one text a line (plain or .gz)")
    back.add_argument("output", help="the TSV to write: translation<TAB>text, a line a text")
    back.add_argument("--strategy", choices=["beam", "greedy", "sampling"],
                      help="decoding.strategy (default the run's); sampling takes "
                           "decoding.top_k, top_p, temperature, seed from --set")
    back.add_argument("--limit", type=_positive_int, help="the first N texts only")
    back.add_argument("--max-minutes", type=float,
                      help="stop after about this many minutes, keeping the texts done")
    back.set_defaults(run=_backtranslate)

    listing = commands.add_parser("recipes", help="the packaged recipes, one line each")
    listing.set_defaults(run=_recipes)

    demo = commands.add_parser("demo", help="a tiny model learns to reverse digit strings")
    demo.add_argument("--examples", type=int, default=4000)
    demo.add_argument("--epochs", type=int, default=10)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)
    return parser


def main(argv=None):
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError, FloatingPointError, NotImplementedError) as error:
        print(f"seq2seq {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
