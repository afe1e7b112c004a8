"""Terminology constraints on a trained run: are the terms there, what do they cost, BLEU.

Takes a trained run directory (`seq2seq train translation --run-dir runs/translation`) and the
first `--sentences` test pairs whose reference has at least two words. Each sentence gets one
or two words of its own reference as constraints (alternately; words of at least four letters,
edge punctuation stripped, drawn with a fixed seed), the case a glossary covers. The run's
beam search translates the sentences with and without the constraints, alternating, in
batches of `--batch` (texts whole: `decoding.split_sentences` off for both), `--rounds` rounds.
Reports the share of constrained outputs flagged as meeting their constraints and the share
that contain every term as text, test BLEU of both against the references, and milliseconds
per sentence of each. Ends with one JSON line.

    python bench/constraints.py --run-dir runs/translation
"""

import argparse
import json
import os
import random
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def terms_of(reference, count, rng):
    """`count` words of `reference` (at least four letters, edge punctuation stripped)."""
    words = [w.strip(".,;:!?()\"'") for w in reference.split()]
    words = [w for w in words if len(w) >= 4]
    return rng.sample(words, min(count, len(words)))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    from seq2seq.evaluation.metrics import bleu
    from seq2seq.run_directory import load_run
    from seq2seq.training import inputs

    run = load_run(args.run_dir, ["decoding.split_sentences=false"])
    pairs = [p for p in inputs.load_split(run.config.data, "test") if len(p[1].split()) >= 2]
    rng = random.Random(args.seed)
    chosen = []
    for source, reference in pairs:
        terms = terms_of(reference, 1 + len(chosen) % 2, rng)
        if terms:
            chosen.append((source, reference, terms))
        if len(chosen) == args.sentences:
            break
    sources = [s for s, _, _ in chosen]
    references = [r for _, r, _ in chosen]
    constraints = [t for _, _, t in chosen]
    systems = {
        "unconstrained": lambda: run.translate(sources, batch_size=args.batch),
        "constrained": lambda: run.translate(sources, batch_size=args.batch,
                                             constraints=constraints),
    }
    for system in systems.values():  # warm up (tracing)
        system()
    seconds = {name: [] for name in systems}
    outputs = {}
    for _ in range(args.rounds):
        for name, system in systems.items():
            start = time.perf_counter()
            outputs[name] = system()
            seconds[name].append(time.perf_counter() - start)
    flagged = run.translate(sources, batch_size=args.batch, constraints=constraints,
                            return_alignments=True)  # the same search, with its flags
    assert [h["translation"] for h in flagged] == outputs["constrained"]
    constrained = outputs["constrained"]
    ms = {name: 1000 * float(np.median(s)) / len(sources) for name, s in seconds.items()}
    results = {
        "run": args.run_dir, "machine": f"{os.cpu_count()} cores", "sentences": len(sources),
        "constraints": sum(len(t) for t in constraints), "strategy": run.strategy.get_config(),
        "constraints_met": round(float(np.mean([h["constraints_met"] for h in flagged])), 4),
        "contains_every_term": round(float(np.mean(
            [all(t in h for t in terms) for h, terms in zip(constrained, constraints)])), 4),
        "unconstrained_contains_every_term": round(float(np.mean(
            [all(t in h for t in terms)
             for h, terms in zip(outputs["unconstrained"], constraints)])), 4),
        "bleu_unconstrained": round(float(bleu(outputs["unconstrained"], references)), 2),
        "bleu_constrained": round(float(bleu(constrained, references)), 2),
        "ms_per_sentence_unconstrained": round(ms["unconstrained"], 1),
        "ms_per_sentence_constrained": round(ms["constrained"], 1),
        "cost_ratio": round(ms["constrained"] / ms["unconstrained"], 2),
    }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
