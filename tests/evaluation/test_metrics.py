"""Metrics against the reference tools' own command lines and hand computations."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from seq2seq.data.readers import read_tsv
from seq2seq.evaluation import metrics
from seq2seq.evaluation.attention_plot import figure_to_png, plot_attention

PAIRS = read_tsv("tests/fixtures/libreoffice-help.en-de.tsv")[:60]
REFERENCES = [t for _, t in PAIRS]
# Hypotheses: the references damaged in varied ways, so scores are neither 0 nor 100.
HYPOTHESES = [" ".join(r.split()[::-1]) if i % 3 == 0 else r.replace("die", "der")
              for i, r in enumerate(REFERENCES)]


def sacrebleu_cli(tmp_path, metric):
    (tmp_path / "ref.txt").write_text("\n".join(REFERENCES) + "\n", encoding="utf-8")
    (tmp_path / "hyp.txt").write_text("\n".join(HYPOTHESES) + "\n", encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "sacrebleu", str(tmp_path / "ref.txt"), "-i",
         str(tmp_path / "hyp.txt"), "-m", metric, "-f", "json"],
        capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(out)


@pytest.mark.parametrize("metric, function", [("bleu", metrics.bleu), ("chrf", metrics.chrf)])
def test_bleu_and_chrf_equal_the_sacrebleu_command_line(tmp_path, metric, function):
    cli = sacrebleu_cli(tmp_path, metric)
    ours = function(HYPOTHESES, REFERENCES)
    assert 5 < ours.value < 95
    assert round(ours.value, 1) == pytest.approx(cli["score"], abs=0.051)
    assert ours.signature == cli["signature"]


def test_rouge_matches_rouge_score_and_splits_sentences_for_lsum():
    from rouge_score import rouge_scorer

    scores = metrics.rouge(["The cat sat. It was happy."], ["The cat sat down. It is happy."])
    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeLsum"], use_stemmer=True)
    direct = scorer.score("The cat sat down.\nIt is happy.", "The cat sat.\nIt was happy.")
    assert scores["rouge1"].value == pytest.approx(100 * direct["rouge1"].fmeasure)
    assert scores["rougeLsum"].value == pytest.approx(100 * direct["rougeLsum"].fmeasure)
    assert metrics.split_sentences("One. Two! Three") == "One.\nTwo!\nThree"
    assert "Lsum:newline-split" in scores["rouge2"].signature


def test_token_accuracy_and_perplexity():
    logits = np.array([[[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]])
    labels = np.array([[1, 1, 0]])
    weights = np.array([[1.0, 1.0, 0.0]])
    assert metrics.token_accuracy(logits, labels, weights) == 0.5
    assert metrics.perplexity(math.log(7.0)) == pytest.approx(7.0)


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        metrics.bleu(["a", "b"], ["a"])


def test_attention_heatmap_renders_a_png():
    weights = np.full((4, 5), 0.2)
    figure = plot_attention(weights, list("abcde"), ["x", "y", "z"], title="pair")
    assert figure.axes[0].get_images()[0].get_array().shape == (3, 5)
    png = figure_to_png(figure)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_long_pair_shows_its_first_tokens_at_a_readable_size():
    # A 160-token description and a 60-token synopsis (the summarization recipe's lengths):
    # drawn whole, 57 x 22 inches with labels 0.35 inch apart, unreadable as an image.
    source, target = [f"s{i}" for i in range(160)], [f"t{i}" for i in range(60)]
    weights = np.random.default_rng(0).random((60, 160))
    figure = plot_attention(weights, source, target)
    (axes,) = figure.axes
    np.testing.assert_array_equal(axes.get_images()[0].get_array(), weights[:48, :48])
    assert [t.get_text() for t in axes.get_xticklabels()] == source[:48]
    assert [t.get_text() for t in axes.get_yticklabels()] == target[:48]
    assert axes.get_xlabel() == "source (first 48 of 160 tokens)"
    assert axes.get_ylabel() == "target (first 48 of 60 tokens)"
    assert tuple(figure.get_size_inches()) == pytest.approx((15.9, 15.9))
