"""Serving speed of the exported SavedModel, loaded with tf.saved_model.load, on CPU.

Exports a model of the given size (random weights; a SentencePiece tokenizer learned from the
bundled LibreOffice help data), beam 4, then measures (1) target tokens/s on batches of 32 real
English sentences from the test split, counting the generated non-pad tokens, and (2) p50/p95
latency of single-sentence requests. Ends with one JSON line: `tok_s`, `p50_ms`, `p95_ms`.

    python bench/serving.py --size base
    python bench/serving.py --size small
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
from seq2seq.config import DecodingConfig  # noqa: E402
from seq2seq.decoding.translator import Translator  # noqa: E402
from seq2seq.export.saved_model import export_translator  # noqa: E402
from seq2seq.models import Transformer  # noqa: E402
from seq2seq.text.tokenizer import train_tokenizer  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="base")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()

    train = datasets.load("libreoffice-help", split="train")
    tokenizer = train_tokenizer([s for p in train[:20000] for s in p], vocabulary_size=8000)
    keras.utils.set_random_seed(0)
    model = Transformer.from_size(args.size, source_vocabulary_size=tokenizer.vocabulary_size,
                                  target_vocabulary_size=tokenizer.vocabulary_size,
                                  max_length=args.max_length)
    decoding = DecodingConfig(strategy="beam", beam_size=args.beam, alpha=0.6,
                              max_length=args.max_length)
    with tempfile.TemporaryDirectory() as directory:
        path = export_translator(Translator(model, tokenizer, tokenizer), decoding, directory)
        serve = tf.saved_model.load(str(path)).signatures["serving_default"]
        sentences = [s for s, _ in datasets.load("libreoffice-help", split="test")]
        sentences = [s for s in sentences if len(s.split()) <= 30]
        serve(text=tf.constant(sentences[: args.batch]))  # warm up
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
    print(json.dumps({
        "machine": f"{os.cpu_count()} cores", "size": args.size, "beam": args.beam,
        "batch": args.batch,
        "tok_s": round(tokens / seconds, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "p95_ms": round(float(np.percentile(latencies, 95)), 1),
    }))


if __name__ == "__main__":
    main()
