"""The keras-io "English-to-Spanish translation with KerasHub" recipe on our data, for a
fixed wall-clock budget: the quality baseline of the translation recipe.

As keras-io builds it: a shared-nothing encoder-decoder of keras-hub layers (embedding 256,
feed-forward 2048, 8 heads, 1 encoder + 1 decoder layer, dropout 0.5 before a softmax head),
RMSprop, batches of 64 padded to 40 tokens, greedy decoding. Only the data and the tokenizer
differ: the bundled LibreOffice help EN->DE with the same SentencePiece vocabulary our recipe
learns. Ends with one JSON line (`test_bleu`, `test_chrf`, `minutes`).

    python bench/keras_io_baseline.py --minutes 10.5 [--task summarization]
"""

import argparse
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from seq2seq import datasets  # noqa: E402
from seq2seq.data.pipeline import encode_pairs, make_dataset  # noqa: E402
from seq2seq.evaluation import metrics  # noqa: E402
from seq2seq.text.tokenizer import END_ID, START_ID, train_tokenizer  # noqa: E402

LENGTH = 40


def build(vocabulary):
    source = keras.Input(shape=(None,), dtype="int32")
    target = keras.Input(shape=(None,), dtype="int32")
    x = keras_hub.layers.TokenAndPositionEmbedding(vocabulary, LENGTH, 256, mask_zero=True)(
        source)
    encoded = keras_hub.layers.TransformerEncoder(intermediate_dim=2048, num_heads=8)(x)
    y = keras_hub.layers.TokenAndPositionEmbedding(vocabulary, LENGTH, 256, mask_zero=True)(
        target)
    y = keras_hub.layers.TransformerDecoder(intermediate_dim=2048, num_heads=8)(y, encoded)
    y = keras.layers.Dropout(0.5)(y)
    probabilities = keras.layers.Dense(vocabulary, activation="softmax")(y)
    model = keras.Model([source, target], probabilities)
    model.compile("rmsprop", loss="sparse_categorical_crossentropy")
    return model


def greedy(model, source_ids):
    """The keras-io decode loop: the whole model over the whole prefix at every step."""
    batch = source_ids.shape[0]
    prompt = np.zeros((batch, LENGTH), "int32")
    prompt[:, 0] = START_ID
    for index in range(1, LENGTH):
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
    parser.add_argument("--vocabulary", type=int, default=4000)
    args = parser.parse_args()
    start = time.time()
    keras.utils.set_random_seed(0)
    train = datasets.load("libreoffice-help", split="train")
    test = datasets.load("libreoffice-help", split="test")
    tokenizer = train_tokenizer([s for p in train[:20000] for s in p],
                                vocabulary_size=args.vocabulary)
    sources, targets, _ = encode_pairs(train, tokenizer, tokenizer, LENGTH)
    pad = lambda x: tf.pad(x, [[0, 0], [0, LENGTH - tf.shape(x)[1]]])  # noqa: E731
    dataset = make_dataset(sources, targets, batch_size=64, max_length=LENGTH, repeat=True).map(
        lambda inputs, out, w: ((pad(inputs[0]), pad(inputs[1])), pad(out), pad(w)))
    model = build(tokenizer.vocabulary_size)
    model.fit(dataset, steps_per_epoch=100_000, epochs=1, verbose=0,
              callbacks=[Deadline(start + 60 * args.minutes)])
    trained_minutes = (time.time() - start) / 60
    hypotheses = []
    for i in range(0, len(test), 128):
        chunk = [s for s, _ in test[i : i + 128]]
        ids = tokenizer.tokenize(chunk)[:, : LENGTH - 1]
        ids = tf.concat([ids, tf.fill([ids.nrows(), 1], END_ID)], axis=1).to_tensor(
            shape=[None, LENGTH])
        tokens = greedy(model, ids.numpy())
        hypotheses += [h.decode() for h in tokenizer.detokenize(tokens).numpy()]
    references = [t for _, t in test]
    bleu, chrf = metrics.bleu(hypotheses, references), metrics.chrf(hypotheses, references)
    print(repr(bleu), repr(chrf), sep="\n")
    print(json.dumps({"system": "keras-io KerasHub example", "test_bleu": round(bleu.value, 2),
                      "test_chrf": round(chrf.value, 2),
                      "train_minutes": round(trained_minutes, 2),
                      "minutes": round((time.time() - start) / 60, 2)}))


if __name__ == "__main__":
    main()
