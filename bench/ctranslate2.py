"""A trained run served three ways: our SavedModel, CTranslate2 float32 and CTranslate2 int8.

Takes a trained run directory (`seq2seq train translation --run-dir runs/translation`) and
converts its final weights, then serves the whole test split with each system in turn, round
after round (alternating, one process), with the run's decoding settings (beam 4 and alpha 1.2
for the translation recipe; CTranslate2 ranks its hypotheses with GNMT at `--patience`), in
batches of `--batch` sentences of similar length (the split sorted by length, as
`translate()` batches), `--threads` threads each. Target tokens are counted the same way
for every system: each output re-tokenized with the run's target tokenizer, plus its end token.
With alpha > 0 both CTranslate2 models are also served at patience 1 (`*_patience1`).
Then p50 latency of single-sentence requests, test BLEU of each system's outputs, and the share
of outputs identical to our own float32 `translate()` (the SavedModel computes in the precision
the run trained in, bfloat16 for the recipe on a CPU with AMX). Ends with one JSON line.

    python bench/ctranslate2.py --run-dir runs/translation [--savedmodel-int8]
"""

import argparse
import json
import os
import sys
import tempfile
import time

# Run as a script, this file's folder comes first on sys.path, where this file would shadow the
# ctranslate2 package it benchmarks.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(
    os.path.abspath(__file__))]
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def count_tokens(tokenizer, outputs):
    """Generated target tokens of `outputs` (strings): their pieces plus one end token each."""
    return int(tokenizer.tokenize(tf.constant(outputs)).row_lengths().numpy().sum()) + len(outputs)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--patience", type=int, default=None,
                        help="CTranslate2 beam patience for GNMT ranking (default: the "
                             "export's CTRANSLATE2_PATIENCE)")
    parser.add_argument("--savedmodel-int8", action="store_true",
                        help="also serve our int8 SavedModel (export.quantize: int8)")
    parser.add_argument("--no-ct2-int8", action="store_true",
                        help="serve CTranslate2 in float32 only")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="decoding overrides of the run, e.g. decoding.alpha=0")
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    from seq2seq.evaluation.metrics import bleu
    from seq2seq.export.ctranslate2 import (
        CTRANSLATE2_PATIENCE,
        CTranslate2Translator,
        export_ctranslate2,
    )
    from seq2seq.export.saved_model import export_translator
    from seq2seq.run_directory import load_run
    from seq2seq.training import inputs

    run = load_run(args.run_dir, args.set)
    decoding = run.config.decoding
    patience = args.patience or CTRANSLATE2_PATIENCE
    test = sorted(inputs.load_split(run.config.data, "test"), key=lambda pair: len(pair[0]))
    sources, references = [s for s, _ in test], [t for _, t in test]
    strategy = run.strategy
    options = dict(strategy=strategy, batch_size=args.batch, patience=patience)
    systems = {}
    with tempfile.TemporaryDirectory() as directory:
        exported = {"savedmodel": None, **({"savedmodel_int8": "int8"}
                                           if args.savedmodel_int8 else {})}
        for name, quantize in exported.items():
            path = export_translator(run.translator, os.path.join(directory, name),
                                     quantize=quantize, limits=run.config.export)
            serve = tf.saved_model.load(str(path)).signatures["serving_default"]

            def translate(texts, serve=serve):
                out = serve(text=tf.constant(texts))["translations"][:, 0].numpy()
                return [t.decode("utf-8") for t in out]

            systems[name] = translate
        converted_kinds = (("ct2_fp32", None),) + ((() if args.no_ct2_int8
                                                     else (("ct2_int8", "int8"),)))
        for name, quantize in converted_kinds:
            path = export_ctranslate2(run.model, run.source_tokenizer, run.target_tokenizer,
                                      run.config, os.path.join(directory, name), quantize)
            converted = CTranslate2Translator(path, intra_threads=args.threads)
            systems[name] = lambda texts, converted=converted: converted.translate(
                texts, **options)
            if decoding.alpha and patience > 1:  # GNMT ranking of a beam that stops sooner
                systems[f"{name}_patience1"] = lambda texts, converted=converted: \
                    converted.translate(texts, **{**options, "patience": 1})

        for translate in systems.values():  # warm up (tracing, first allocations)
            translate(sources[: args.batch])
        outputs = {name: [] for name in systems}
        seconds = {name: [] for name in systems}
        tokens = {name: 0 for name in systems}
        for round_ in range(args.rounds):
            for name, translate in systems.items():
                start, texts = time.perf_counter(), []
                for i in range(0, len(sources), args.batch):
                    texts += translate(sources[i : i + args.batch])
                seconds[name].append(time.perf_counter() - start)
                if round_ == 0:
                    outputs[name] = texts
                    tokens[name] = count_tokens(run.target_tokenizer, texts)
                print(f"round {round_ + 1} {name}: {tokens[name] / seconds[name][-1]:.0f} "
                      "target tok/s", flush=True)
        latencies = {name: [] for name in systems}
        for sentence in sources[:: max(1, len(sources) // args.requests)][: args.requests]:
            for name, translate in systems.items():
                start = time.perf_counter()
                translate([sentence])
                latencies[name].append(1000 * (time.perf_counter() - start))

    float32_run = load_run(args.run_dir, [*args.set, "training.precision=float32"])
    float32 = float32_run.translator.translate(
        sources, **{k: v for k, v in options.items() if k != "patience"})
    results = {"machine": f"{os.cpu_count()} cores", "run": args.run_dir,
               "sentences": len(sources), "beam": decoding.beam_size, "alpha": decoding.alpha,
               "batch": args.batch, "threads": args.threads, "patience": patience}
    for name in systems:
        results[f"{name}_tok_s"] = round(tokens[name] / float(np.median(seconds[name])), 1)
        results[f"{name}_p50_ms"] = round(float(np.percentile(latencies[name], 50)), 1)
        results[f"bleu_{name}"] = round(float(bleu(outputs[name], references)), 2)
        results[f"identical_{name}"] = round(
            float(np.mean([a == b for a, b in zip(outputs[name], float32)])), 4)
    results["bleu_float32_translate"] = round(float(bleu(float32, references)), 2)
    results["ratio_savedmodel_vs_ct2_fp32"] = round(
        results["savedmodel_tok_s"] / results["ct2_fp32_tok_s"], 3)
    results["identical_fp32"] = results["identical_ct2_fp32"]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
