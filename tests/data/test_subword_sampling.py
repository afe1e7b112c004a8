"""Subword regularization: sampled segmentations, per call and per epoch of the pipeline, that
all detokenize to the text; none when it is off."""

import pytest

from seq2seq.data.pipeline import Resampling, encode_pairs, make_dataset
from seq2seq.data.readers import read_tsv
from seq2seq.text.tokenizer import train_tokenizer

PAIRS = read_tsv("tests/fixtures/libreoffice-help.en-de.tsv")[:60]


@pytest.fixture(scope="module", params=["unigram", "bpe"])
def tokenizer(request):
    return train_tokenizer([s for p in PAIRS for s in p], vocabulary_size=400,
                           model_type=request.param)


def test_sampled_segmentations_vary_and_detokenize_to_the_text(tokenizer):
    text = [PAIRS[3][0]]
    one_best = tokenizer.tokenize(text).to_list()
    sampler = tokenizer.sampled(0.1)
    samples = [sampler.tokenize(text).to_list()[0] for _ in range(20)]
    assert len({tuple(s) for s in samples}) > 3
    expected = tokenizer.detokenize(tokenizer.tokenize(text)).numpy().tolist()
    assert all(tokenizer.detokenize([s]).numpy().tolist() == expected for s in samples)
    assert all(tokenizer.tokenize(text).to_list() == one_best for _ in range(5))  # off


@pytest.mark.parametrize("targets_too", [False, True])
def test_each_epoch_samples_anew_and_keeps_the_text(tokenizer, targets_too):
    sources, targets, _, kept = encode_pairs(PAIRS, tokenizer, tokenizer, 128, return_kept=True)
    kept_pairs = [p for p, k in zip(PAIRS, kept.numpy()) if k]
    resample = Resampling([s for s, _ in kept_pairs], [t for _, t in kept_pairs],
                          tokenizer.sampled(0.1), tokenizer.sampled(0.1) if targets_too else None)

    def epochs(resample):
        dataset = make_dataset(sources, targets, batch_size=len(kept_pairs), max_length=128,
                               shuffle=False, repeat=True, resample=resample)
        return [(s.numpy(), t.numpy()) for (s, t), _, _ in dataset.take(2)]

    plain, sampled = epochs(None), epochs(resample)
    assert (plain[0][0] == plain[1][0]).all()  # off: the same ids every epoch
    (first, first_target), (second, second_target) = sampled
    assert first.shape != second.shape or (first != second).any()
    assert (first_target.shape != second_target.shape or (
        first_target != second_target).any()) == targets_too
    for source_ids, target_ids in sampled:
        assert tokenizer.detokenize(source_ids).numpy().tolist() == tokenizer.detokenize(
            plain[0][0]).numpy().tolist()
        assert tokenizer.detokenize(target_ids[:, 1:]).numpy().tolist() == \
            tokenizer.detokenize(plain[0][1][:, 1:]).numpy().tolist()
