"""The metrics people publish: sacreBLEU, chrF, ROUGE; and token accuracy and perplexity.

BLEU and chrF are sacrebleu's own corpus metrics (never a re-implementation), reported with
sacrebleu's signature so a figure can be reproduced. ROUGE is Google's rouge-score package;
ROUGE-Lsum is computed over newline-separated sentences, as that package expects.
"""

import math
import re

import numpy as np
import sacrebleu
from rouge_score import rouge_scorer


class Score:
    """A metric value with the signature that makes it reproducible."""

    def __init__(self, name, value, signature=""):
        self.name = name
        self.value = value
        self.signature = signature

    def __float__(self):
        return float(self.value)

    def __repr__(self):
        return f"{self.name} = {self.value:.2f}" + (f" ({self.signature})" if self.signature else "")


def _check(hypotheses, references):
    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses but {len(references)} references; expected one "
            "hypothesis per reference."
        )
    return hypotheses, references


def bleu(hypotheses, references, tokenize="13a"):
    """Corpus sacreBLEU (one reference per hypothesis)."""
    hypotheses, references = _check(hypotheses, references)
    metric = sacrebleu.metrics.BLEU(tokenize=tokenize)
    result = metric.corpus_score(hypotheses, [references])
    return Score("BLEU", result.score, str(metric.get_signature()))


def chrf(hypotheses, references):
    """Corpus chrF (sacrebleu's defaults: character 6-grams, beta 2)."""
    hypotheses, references = _check(hypotheses, references)
    metric = sacrebleu.metrics.CHRF()
    result = metric.corpus_score(hypotheses, [references])
    return Score("chrF", result.score, str(metric.get_signature()))


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text):
    """One sentence per line, for ROUGE-Lsum."""
    return "\n".join(s for s in _SENTENCE_END.split(text.strip()) if s)


def rouge(hypotheses, references, use_stemmer=True):
    """Mean ROUGE-1, ROUGE-2 and ROUGE-Lsum F1 (x100), as a dict of `Score`s."""
    hypotheses, references = _check(hypotheses, references)
    names = ("rouge1", "rouge2", "rougeLsum")
    scorer = rouge_scorer.RougeScorer(list(names), use_stemmer=use_stemmer)
    totals = dict.fromkeys(names, 0.0)
    for hypothesis, reference in zip(hypotheses, references):
        scores = scorer.score(split_sentences(reference), split_sentences(hypothesis))
        for name in names:
            totals[name] += scores[name].fmeasure
    signature = f"rouge-score|F1|stemmer:{'yes' if use_stemmer else 'no'}|Lsum:newline-split"
    count = max(len(hypotheses), 1)
    return {name: Score(name, 100 * totals[name] / count, signature) for name in names}


def task_scores(task, hypotheses, references):
    """The metrics reported for a task: BLEU and chrF (translation, and denoising: of the
    rebuilt text), ROUGE (summarization)."""
    if task in ("translation", "denoising"):
        return {"bleu": bleu(hypotheses, references), "chrf": chrf(hypotheses, references)}
    if task == "summarization":
        return rouge(hypotheses, references)
    raise ValueError(f"task={task!r}; expected translation, summarization or denoising.")


def token_accuracy(logits, labels, weights):
    """Share of weighted target positions whose argmax is the label."""
    correct = np.asarray(np.argmax(logits, axis=-1) == np.asarray(labels), dtype="float64")
    weights = np.asarray(weights, dtype="float64")
    return float((correct * weights).sum() / weights.sum())


def perplexity(mean_cross_entropy):
    """exp of the mean per-token cross-entropy (natural log)."""
    return math.exp(mean_cross_entropy)
