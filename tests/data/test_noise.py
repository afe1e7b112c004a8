"""Source noise: word dropout, blanking and local shuffle on token ids, against a word-by-word
reference written out in Python over the same uniform draws."""

import numpy as np
import pytest
import tensorflow as tf

from seq2seq.data.noise import add_noise
from seq2seq.text.tokenizer import END_ID, PAD_ID, UNK_ID

# Ids 4..9 start words, 10..12 continue them ("▁the", "re" ...): a hand-made vocabulary.
STARTS = np.array([False] * 4 + [True] * 6 + [False] * 3)
ROWS = [[4, 10, 5, 6, 11, 12, 7, END_ID, PAD_ID, PAD_ID],
        [8, 9, 4, 10, 5, END_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID],
        [11, 5, 6, 7, 8, 9, 4, 5, 6, END_ID]]
SEED = (3, 7)


def uniforms(ids, seed):
    """The three draws add_noise makes, recomputed."""
    batch, length = np.shape(ids)
    seeds = tf.random.experimental.stateless_split(tf.constant(seed, tf.int64), 3)
    return [tf.random.stateless_uniform([batch, length], seeds[i]).numpy() for i in range(3)]


def reference_noise(ids, starts, uniforms, drop, blank, shuffle_distance, blank_id=UNK_ID):
    """The noise written word by word: `uniforms` are the three `(batch, words)` draws."""
    out = []
    for r, row in enumerate(np.asarray(ids).tolist()):
        tokens = [t for t in row if t != PAD_ID]
        end = tokens.index(END_ID) if END_ID in tokens else len(tokens)
        words = []
        for i, t in enumerate(tokens[:end]):
            if i == 0 or starts[t]:
                words.append([t])
            else:
                words[-1].append(t)
        kept = []
        for w, pieces in enumerate(words):
            if uniforms[0][r][w] < drop:
                continue
            if uniforms[1][r][w] < blank:
                pieces = [blank_id]
            key = w + (uniforms[2][r][w] * (shuffle_distance + 1) if shuffle_distance else 0)
            kept.append((key, w, pieces))
        noised = [t for _, _, pieces in sorted(kept) for t in pieces] + tokens[end:]
        out.append(noised + [PAD_ID] * (len(row) - len(noised)))
    return out


def noised(drop=0.0, blank=0.0, distance=0, rows=ROWS, seed=SEED):
    return add_noise(tf.constant(rows), tf.constant(STARTS), tf.constant(seed), drop, blank,
                     distance).numpy().tolist()


@pytest.mark.parametrize("drop, blank, distance", [
    (0.3, 0.0, 0), (0.0, 0.4, 0), (0.0, 0.0, 3), (0.2, 0.2, 2), (0.5, 0.5, 8)])
def test_noise_equals_the_word_by_word_reference(drop, blank, distance):
    expected = reference_noise(ROWS, STARTS, uniforms(ROWS, SEED), drop, blank, distance)
    assert noised(drop, blank, distance) == expected
    assert noised(drop, blank, distance) != ROWS  # the seed does change these rows


def test_hand_made_examples():
    assert noised() == ROWS  # rate 0: a no-op
    # Every word dropped: the end id and padding stay.
    assert noised(drop=1.0) == [[END_ID] + [PAD_ID] * 9, [END_ID] + [PAD_ID] * 9,
                                [END_ID] + [PAD_ID] * 9]
    # Every word blanked: one blank a word ("▁the" "re" is one word, as is a leading "re").
    assert noised(blank=1.0) == [[UNK_ID] * 4 + [END_ID] + [PAD_ID] * 5,
                                 [UNK_ID] * 4 + [END_ID] + [PAD_ID] * 5,
                                 [UNK_ID] * 9 + [END_ID]]
    # Shuffled words keep their pieces together and move at most the distance.
    for row, before in zip(noised(distance=1, seed=(0, 1)), ROWS):
        assert sorted(row) == sorted(before) and row[row.index(END_ID):] == before[
            before.index(END_ID):]


def test_rates_hold_on_a_large_sample():
    rows = np.tile(np.array([[4, 5, 6, 7, 8, 9, 4, 5, 6, 7, END_ID]], np.int32), (2000, 1))
    drop = add_noise(rows, tf.constant(STARTS), tf.constant(SEED), drop=0.1).numpy()
    kept = (drop != PAD_ID).sum() - 2000  # words kept (the end ids aside)
    assert abs(1 - kept / (2000 * 10) - 0.1) < 0.01
    blanked = add_noise(rows, tf.constant(STARTS), tf.constant(SEED), blank=0.2).numpy()
    assert abs((blanked == UNK_ID).sum() / (2000 * 10) - 0.2) < 0.01
    # Ten distinct one-token words: each moves at most 3 places, and some do.
    starts = tf.constant([False] * 4 + [True] * 10)
    words = np.tile(np.array([[*range(4, 14), END_ID]], np.int32), (500, 1))
    shuffled = add_noise(words, starts, tf.constant(SEED), shuffle_distance=3).numpy()
    places = np.argsort(shuffled[:, :10], axis=1)  # where each word went
    moved = np.abs(places - np.arange(10))
    assert moved.max() == 3 and (moved > 0).mean() > 0.5
    assert (shuffled[:, 10] == END_ID).all()


def test_the_pipeline_noises_each_batch_anew_and_reproducibly():
    from seq2seq.data.pipeline import SourceNoise, make_dataset

    sources = tf.ragged.constant([[w for w in row if w != PAD_ID] for row in ROWS] * 4)
    targets = tf.ragged.constant([[5, 6, 7]] * 12)
    noise = SourceNoise(tf.constant(STARTS), drop=0.3, blank=0.1, shuffle_distance=2)

    def epochs(count, noise):
        dataset = make_dataset(sources, targets, batch_size=4, max_length=12, repeat=True,
                               shuffle=False, seed=5, noise=noise)
        return [((s.numpy().tolist(), t.numpy().tolist())) for (s, t), _, _ in
                dataset.take(3 * count)]

    plain, first, again = epochs(2, None), epochs(2, noise), epochs(2, noise)
    assert first == again  # seeded
    assert [t for _, t in first] == [t for _, t in plain]  # targets as they were
    assert first[:3] != plain[:3] and first[3:] != plain[3:]
    # Unshuffled, the second epoch's batches hold the first's rows, noised otherwise.
    assert plain[:3] == plain[3:] and first[:3] != first[3:]
