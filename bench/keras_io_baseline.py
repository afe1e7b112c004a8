"""The keras-io "English-to-Spanish translation with KerasHub" recipe on our data, for a
fixed wall-clock budget: the quality baseline of the translation and summarization recipes.

As keras-io builds it: a shared-nothing encoder-decoder of keras-hub layers (embedding 256,
feed-forward 2048, 8 heads, 1 encoder + 1 decoder layer, dropout 0.5 before a softmax head),
RMSprop, batches of 64 padded to a fixed length (40 tokens; summarization sources 160, the
longest our recipe keeps), greedy decoding. Only the data and the tokenizer differ: the
recipe's bundled dataset with the SentencePiece vocabulary the recipe's config learns. Ends
with one JSON line (`test_bleu`, `test_chrf` or `test_rouge1`, `test_rouge2`,
`test_rougeLsum`, and `minutes`).

    python bench/keras_io_baseline.py --minutes 10.5 [--task summarization]
"""

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from seq2seq import config as config_lib  # noqa: E402
from seq2seq.data.pipeline import encode_pairs, make_dataset  # noqa: E402
from seq2seq.evaluation import metrics  # noqa: E402
from seq2seq.text.tokenizer import END_ID, START_ID  # noqa: E402
from seq2seq.training import inputs  # noqa: E402

# (source, target) lengths every batch is padded to.
LENGTHS = {"translation": (40, 40), "summarization": (160, 40)}


def build(vocabulary, source_length, target_length):
    source = keras.Input(shape=(None,), dtype="int32")
    target = keras.Input(shape=(None,), dtype="int32")
    x = keras_hub.layers.TokenAndPositionEmbedding(vocabulary, source_length, 256,
                                                   mask_zero=True)(source)
    encoded = keras_hub.layers.TransformerEncoder(intermediate_dim=2048, num_heads=8)(x)
    y = keras_hub.layers.TokenAndPositionEmbedding(vocabulary, target_length, 256,
                                                   mask_zero=True)(target)
    y = keras_hub.layers.TransformerDecoder(intermediate_dim=2048, num_heads=8)(y, encoded)
    y = keras.layers.Dropout(0.5)(y)
    probabilities = keras.layers.Dense(vocabulary, activation="softmax")(y)
    model = keras.Model([source, target], probabilities)
    model.compile("rmsprop", loss="sparse_categorical_crossentropy")
    return model


def greedy(model, source_ids, target_length):
    """The keras-io decode loop: the whole model over the whole prefix at every step."""
    batch = source_ids.shape[0]
    prompt = np.zeros((batch, target_length), "int32")
    prompt[:, 0] = START_ID
    for index in range(1, target_length):
        probabilities = model.predict_on_batch([source_ids, prompt])
        prompt[:, index] = probabilities[:, index - 1].argmax(-1)
        if (prompt == END_ID).any(axis=1).all():
            break
    return prompt


class Deadline(keras.callbacks.Callback):
    def __init__(self, deadline):
        super().__init__()
        self.deadline = deadline

    def on_train_batch_end(self, batch, logs=None):
        if time.time() >= self.deadline:
            self.model.stop_training = True


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.5)
    parser.add_argument("--task", choices=sorted(LENGTHS), default="translation")
    args = parser.parse_args()
    start = time.time()
    keras.utils.set_random_seed(0)
    data = config_lib.load(args.task).data
    source_length, target_length = LENGTHS[args.task]
    train = inputs.load_split(data, "train")
    test = inputs.load_split(data, "test")
    tokenizer, _ = inputs.tokenizers(data, train, tempfile.mkdtemp() + "/tokenizer")
    sources, targets, _ = encode_pairs(train, tokenizer, tokenizer, source_length)
    targets = targets[:, : target_length - 1]  # keras-io truncates to the fixed length

    def pad(x, length):
        return tf.pad(x, [[0, 0], [0, length - tf.shape(x)[1]]])

    dataset = make_dataset(sources, targets, batch_size=64, max_length=source_length,
                           repeat=True).map(
        lambda inputs, out, w: ((pad(inputs[0], source_length), pad(inputs[1], target_length)),
                                pad(out, target_length), pad(w, target_length)))
    model = build(tokenizer.vocabulary_size, source_length, target_length)
    model.fit(dataset, steps_per_epoch=100_000, epochs=1, verbose=0,
              callbacks=[Deadline(start + 60 * args.minutes)])
    trained_minutes = (time.time() - start) / 60
    hypotheses = []
    for i in range(0, len(test), 128):
        chunk = [s for s, _ in test[i : i + 128]]
        ids = tokenizer.tokenize(chunk)[:, : source_length - 1]
        ids = tf.concat([ids, tf.fill([ids.nrows(), 1], END_ID)], axis=1).to_tensor(
            shape=[None, source_length])
        tokens = greedy(model, ids.numpy(), target_length)
        hypotheses += [h.decode() for h in tokenizer.detokenize(tokens).numpy()]
    references = [t for _, t in test]
    scores = metrics.task_scores(args.task, hypotheses, references)
    for score in scores.values():
        print(repr(score))
    print(json.dumps({"system": "keras-io KerasHub example", "task": args.task,
                      **{f"test_{name}": round(float(score), 2) for name, score in
                         scores.items()},
                      "train_minutes": round(trained_minutes, 2),
                      "minutes": round((time.time() - start) / 60, 2)}))


if __name__ == "__main__":
    main()
