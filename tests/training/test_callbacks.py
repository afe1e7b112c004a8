"""The validation callback's TensorBoard summaries."""

import numpy as np

from seq2seq.decoding.translator import Translator
from seq2seq.models import Transformer
from seq2seq.text.tokenizer import train_tokenizer
from seq2seq.training.callbacks import Validation

TEXTS = ["Choose Tools - Options to open the dialog.", "Insert a new sheet.",
         "Click the cell and press Enter."] * 20


def test_a_heatmap_of_a_hypothesis_longer_than_the_position_table_is_drawn():
    # A learned position table holds model.max_length positions. The hypothesis is tokenized
    # again for its heatmap, and a string the search wrote in max_length tokens can come out
    # longer (here it simply is): training stopped at its first validation with a slice error.
    tokenizer = train_tokenizer(TEXTS, vocabulary_size=100)
    model = Transformer.from_size("tiny", source_vocabulary_size=100,
                                  target_vocabulary_size=100, max_length=12,
                                  position_embedding="learned")
    model((np.ones((1, 2), "int32"), np.ones((1, 2), "int32")))
    callback = Validation("translation", Translator(model, tokenizer, tokenizer), [], None, 1,
                          None)
    callback.set_model(model)
    hypothesis = " ".join(TEXTS[:3])
    assert tokenizer.tokenize([hypothesis]).row_lengths()[0] > 12
    image = callback.heatmap(TEXTS[0], hypothesis)
    assert image.shape[0] == 1 and image.shape[-1] == 4 and image.dtype == "uint8"
