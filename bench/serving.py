"""Serving speed (and quality) of the exported SavedModel, loaded with tf.saved_model.load, on CPU.

Exports a model, beam 4, then measures (1) target tokens/s on batches of 32 real English
sentences from the test split, counting the generated non-pad tokens, and (2) p50/p95 latency
of single-sentence requests. The model is either of a given size with random weights (a
SentencePiece tokenizer learned from the bundled LibreOffice help data), or a trained run
(`--run-dir`, its best checkpoint), whose served translations of the whole test split are also
scored with sacreBLEU. `--int8` exports the same model a second time with int8 weights
(`export.quantize: int8`) and measures both exports alternately in one process. `--marian`
measures instead, alternately, an OPUS-MT-shaped Transformer-base (random Marian weights,
58,101-piece vocabulary, post-norm, swish, logits bias) imported with `seq2seq.convert` and our
own base at the same vocabulary size, both tokenizing through the same Marian vocabulary
table. Ends with one JSON line: `tok_s`, `p50_ms`, `p95_ms` (and `int8_*` or `marian_*`,
`bleu`, `int8_bleu`).

    python bench/serving.py --size base
    python bench/serving.py --size small
    python bench/serving.py --run-dir runs/translation --int8
    python bench/serving.py --marian
"""

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from seq2seq import datasets  # noqa: E402
from seq2seq.decoding import BeamSearch  # noqa: E402
from seq2seq.decoding.translator import Translator  # noqa: E402
from seq2seq.evaluation.metrics import bleu  # noqa: E402
from seq2seq.export.saved_model import export_translator  # noqa: E402
from seq2seq.models import Transformer  # noqa: E402
from seq2seq.text.tokenizer import train_tokenizer  # noqa: E402


def random_translator(args):
    train = datasets.load("libreoffice-help", split="train")
    tokenizer = train_tokenizer([s for p in train[:20000] for s in p], vocabulary_size=8000)
    keras.utils.set_random_seed(0)
    model = Transformer.from_size(args.size, source_vocabulary_size=tokenizer.vocabulary_size,
                                  target_vocabulary_size=tokenizer.vocabulary_size,
                                  max_length=args.max_length)
    test = datasets.load("libreoffice-help", split="test")
    return Translator(model, tokenizer, tokenizer), test


def marian_translators(args, vocabulary_size=58101):
    """`({"float32": ours, "marian": imported}, test)`: our base and an imported OPUS-MT base
    of random weights, at one vocabulary (Marian's, its SentencePiece pieces learned from the
    bundled data, filled up with pieces no text produces)."""
    from seq2seq.convert import marian
    from tests.convert.marian_writer import model_options, random_weights, vocabularies

    train = datasets.load("libreoffice-help", split="train")
    source_spm = train_tokenizer([s for s, _ in train[:20000]], vocabulary_size=8000).model
    target_spm = train_tokenizer([t for _, t in train[:20000]], vocabulary_size=8000).model
    pieces, _ = vocabularies(source_spm, target_spm, shared=True)
    pieces += [f"▁filler{i}" for i in range(vocabulary_size - len(pieces))]
    weights = random_weights(np.random.default_rng(0), len(pieces), len(pieces), dim=512,
                             ffn=2048, layers=(6, 6), gain=1.0)
    weights["decoder_ff_logit_out_b"][0, 0] = -100.0  # never ends: 64 tokens, as ours
    options = model_options(dim=512, heads=8, ffn=2048, layers=(6, 6), activation="swish")
    checkpoint = marian.MarianCheckpoint(
        options=marian.check_options(options, "bench"), weights=weights,
        source_vocabulary=pieces, target_vocabulary=pieces, source_spm=source_spm,
        target_spm=target_spm)
    _, imported, source, target = marian.build(checkpoint, max_length=args.max_length)
    keras.utils.set_random_seed(0)
    ours = Transformer.from_size("base", source_vocabulary_size=source.vocabulary_size,
                                 target_vocabulary_size=target.vocabulary_size,
                                 max_length=args.max_length, share_embeddings=True)
    test = datasets.load("libreoffice-help", split="test")
    return {"float32": Translator(ours, source, target),
            "marian": Translator(imported, source, target)}, test


def trained_translator(run_dir):
    from seq2seq.run_directory import load_run
    from seq2seq.training import inputs

    run = load_run(run_dir)  # the weights the run reports and exports
    return run.translator, inputs.load_split(run.config.data, "test")


def speed(serve, sentences, args, tokenizer):
    """(target tokens/s on batches, single-request latencies in ms)."""
    tokens, seconds = 0, 0.0
    for i in range(args.batches):
        batch = sentences[i * args.batch : (i + 1) * args.batch]
        start = time.perf_counter()
        out = serve(text=tf.constant(batch))
        seconds += time.perf_counter() - start
        # Generated target tokens of the best hypotheses (subword pieces, end included).
        pieces = tokenizer.tokenize(out["translations"][:, 0])
        tokens += int(pieces.row_lengths().numpy().sum()) + len(batch)
    latencies = []
    for sentence in sentences[: args.requests]:
        start = time.perf_counter()
        serve(text=tf.constant([sentence]))
        latencies.append(1000 * (time.perf_counter() - start))
    return tokens / seconds, latencies


def served_bleu(serve, pairs, batch=64):
    hypotheses = []
    for i in range(0, len(pairs), batch):
        out = serve(text=tf.constant([s for s, _ in pairs[i : i + batch]]))
        hypotheses += [t.decode("utf-8") for t in out["translations"][:, 0].numpy()]
    return bleu(hypotheses, [t for _, t in pairs])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="base")
    parser.add_argument("--run-dir", default=None, help="a trained run instead of random weights")
    parser.add_argument("--int8", action="store_true", help="also measure an int8 export")
    parser.add_argument("--marian", action="store_true",
                        help="an imported OPUS-MT-shaped base against our base")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    if args.marian:
        translators, test = marian_translators(args)
        variants = {name: None for name in translators}
    else:
        translator, test = (trained_translator(args.run_dir) if args.run_dir
                            else random_translator(args))
        variants = {"float32": None, "int8": "int8"} if args.int8 else {"float32": None}
        translators = {name: translator for name in variants}
    translator = translators["float32"]
    strategy = BeamSearch(beam_size=args.beam, alpha=0.6, max_length=args.max_length)
    sentences = [s for s, _ in test if len(s.split()) <= 30]
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        served = {}
        for name, mode in variants.items():
            path = export_translator(translators[name], os.path.join(directory, name),
                                     quantize=mode, strategy=strategy)
            served[name] = tf.saved_model.load(str(path)).signatures["serving_default"]
            served[name](text=tf.constant(sentences[: args.batch]))  # warm up
        timings = {name: ([], []) for name in served}
        for _ in range(args.rounds):  # alternating
            for name, serve in served.items():
                tok_s, latencies = speed(serve, sentences, args, translator.target_tokenizer)
                timings[name][0].append(tok_s)
                timings[name][1].extend(latencies)
        for name, (tok_s, latencies) in timings.items():
            prefix = "" if name == "float32" else f"{name}_"
            results[f"{prefix}tok_s"] = round(float(np.mean(tok_s)), 1)
            results[f"{prefix}p50_ms"] = round(float(np.percentile(latencies, 50)), 1)
            results[f"{prefix}p95_ms"] = round(float(np.percentile(latencies, 95)), 1)
            if args.run_dir:
                score = served_bleu(served[name], test)
                print(name, repr(score), flush=True)
                results[f"{prefix}bleu"] = round(float(score), 2)
    print(json.dumps({
        "machine": f"{os.cpu_count()} cores",
        "model": args.run_dir or ("base, 58,101 pieces" if args.marian else args.size),
        "beam": args.beam, "batch": args.batch, **results,
    }))


if __name__ == "__main__":
    main()
