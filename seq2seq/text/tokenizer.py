"""Subword tokenizers that run inside the TensorFlow graph.

Two kinds, chosen by name: "sentencepiece" (unigram or BPE, trained with the sentencepiece
library, run by tensorflow-text's `SentencepieceTokenizer`) and "wordpiece" (vocabulary learned
with keras-hub's `compute_word_piece_vocabulary`, run by tensorflow-text's
`FastWordpieceTokenizer`). Both run as TensorFlow ops, so an exported model tokenizes raw strings
itself and nothing at serving time tokenizes in Python. tensorflow-text is used directly rather
than through keras-hub's tokenizer layers because those may take a non-TensorFlow path outside
a graph, and the export must contain TensorFlow and tensorflow-text ops only.

Every tokenizer has the same special ids: pad 0, start 1, end 2, unknown 3.

A SentencePiece tokenizer may also carry a vocabulary of its own (an imported Marian model's:
its pieces in the order of the model's embedding rows, `seq2seq.convert.marian`). SentencePiece
then only segments the text, and its piece ids are mapped onto the vocabulary's through two
constant tables (a `tf.gather` each way), so an export still holds stock TensorFlow and
tensorflow-text ops only.
"""

import collections
import hashlib
import io
import json
import pathlib
import unicodedata

import keras_hub
import sentencepiece as spm
import tensorflow as tf
import tensorflow_text as tf_text

PAD_ID, START_ID, END_ID, UNK_ID = 0, 1, 2, 3
WORDPIECE_SPECIALS = ["[PAD]", "[START]", "[END]", "[UNK]"]
SENTENCEPIECE_MODEL_TYPES = ("unigram", "bpe")
KINDS = ("sentencepiece", "wordpiece")


class Tokenizer(tf.Module):
    """An in-graph subword tokenizer with fixed special ids.

    Build one with `train_tokenizer()` or `Tokenizer.load()`.

    Args:
        kind: "sentencepiece" or "wordpiece".
        model: the serialized SentencePiece model (bytes), or the WordPiece vocabulary (a list
            of tokens whose first four are `WORDPIECE_SPECIALS`).
        vocabulary: sentencepiece only: the pieces by id, when the ids are not SentencePiece's
            own (the first four are the specials, by their ids); a piece that SentencePiece
            does not know is never produced by `tokenize` and detokenizes as its unknown.
        source_prefix: vocabulary tokens, space-separated, that `encode_sources` puts before
            every source (`data.source_prefix`).
        sampling: sentencepiece only: `(alpha, nbest_size)` to sample a segmentation at each
            call (subword regularization: unigram sampling, or BPE-dropout at rate alpha for a
            BPE model; see `sampled`); None: the one best segmentation.
    """

    def __init__(self, kind, model, vocabulary=None, source_prefix=None, sampling=None):
        super().__init__(name=f"{kind}_tokenizer")
        if kind not in KINDS:
            raise ValueError(f"Unknown tokenizer {kind!r}; expected one of {', '.join(KINDS)}.")
        if vocabulary is not None and kind != "sentencepiece":
            raise ValueError(f"A vocabulary table is for a sentencepiece tokenizer, not {kind!r}.")
        self.kind = kind
        self.model = model
        self.vocabulary = None if vocabulary is None else list(vocabulary)
        if sampling is not None and kind != "sentencepiece":
            raise ValueError(f"Sampled segmentations are SentencePiece's, not {kind!r}'s.")
        self.sampling = sampling
        self._tokenizer = self._make_tokenizer()
        if kind == "wordpiece":
            self.vocabulary_size = len(model)
        elif vocabulary is None:
            self.vocabulary_size = int(self._tokenizer.vocab_size())
        else:
            self.vocabulary_size = len(self.vocabulary)
            self._to_vocabulary, self._to_sentencepiece = _id_tables(model, self.vocabulary)
        self.source_prefix = source_prefix
        self._prefix_ids = tf.constant(self._token_ids((source_prefix or "").split()), tf.int32)

    def _token_index(self):
        """`{token: id}` of the whole vocabulary (Python)."""
        if self.kind == "wordpiece":
            return {token: i for i, token in enumerate(self.model)}
        if self.vocabulary is not None:
            return {token: i for i, token in enumerate(self.vocabulary)}
        processor = spm.SentencePieceProcessor(model_proto=self.model)
        return {processor.id_to_piece(i): i for i in range(processor.get_piece_size())}

    def token_id(self, token):
        """The id of vocabulary `token` (a reserved one: `train_tokenizer(reserved_tokens=)`),
        or None when the vocabulary has no such token."""
        return self._token_index().get(token)

    def _token_ids(self, tokens):
        """The ids of vocabulary `tokens` (Python); an unknown one raises `ValueError`."""
        if not tokens:
            return []
        index = self._token_index()
        unknown = [token for token in tokens if token not in index]
        if unknown:
            raise ValueError(f"data.source_prefix={self.source_prefix!r}: {unknown[0]!r} is not "
                             "a token of the source vocabulary; expected its tokens, e.g. "
                             "the >>xxx<< target-language tokens of a multilingual model.")
        return [index[token] for token in tokens]

    def with_source_prefix(self, source_prefix):
        """This tokenizer with `source_prefix` (or itself when that is already its prefix)."""
        if source_prefix == self.source_prefix:
            return self
        return Tokenizer(self.kind, self.model, self.vocabulary, source_prefix, self.sampling)

    def sampled(self, alpha, nbest_size=-1):
        """This tokenizer drawing a segmentation at each call (Kudo, 2018): for a unigram model
        among the `nbest_size` best (-1: all) with probabilities ** `alpha`; for a BPE model,
        each merge dropped with probability `alpha` (BPE-dropout, Provilkov et al., 2020). The
        draws are SentencePiece's own, not seeded."""
        return Tokenizer(self.kind, self.model, self.vocabulary, self.source_prefix,
                         (alpha, nbest_size))

    def _make_tokenizer(self):
        if self.kind == "sentencepiece":
            # Named by its model: a loaded SavedModel creates each SentencePiece resource under
            # its op's name and shares one resource per name, so that two models created under
            # the default name (a source and a target of their own) would both run the first.
            digest = hashlib.sha256(self.model).hexdigest()[:16]
            alpha, nbest_size = self.sampling or (1.0, 0)
            return tf_text.SentencepieceTokenizer(
                model=self.model, out_type=tf.int32, nbest_size=nbest_size, alpha=alpha,
                name=f"sentencepiece_{digest}{'_sampled' if self.sampling else ''}")
        if list(self.model[:4]) != WORDPIECE_SPECIALS:
            raise ValueError(
                f"A WordPiece vocabulary must start with {WORDPIECE_SPECIALS}, "
                f"got {list(self.model[:4])}."
            )
        return tf_text.FastWordpieceTokenizer(
            vocab=list(self.model),
            suffix_indicator="##",
            unknown_token="[UNK]",
            no_pretokenization=False,
            support_detokenization=True,
        )

    def reset(self):
        """Rebuilds the tensorflow-text tokenizer and its model resource.

        `tf.random.set_seed` (and so `keras.utils.set_random_seed`) clears TensorFlow's kernel
        cache, which frees the SentencePiece model resource of an eagerly built tokenizer
        (tensorflow/text#570): later calls fail with NotFoundError. Eager calls reset and retry
        by themselves; holders of `tf.function`s that captured the old resource (`Translator`)
        reset and retrace.
        """
        self._tokenizer = self._make_tokenizer()

    def _run(self, method, *args):
        """Calls `method` of the tensorflow-text tokenizer (see `reset`)."""
        try:
            return getattr(self._tokenizer, method)(*args)
        except tf.errors.NotFoundError:
            if not tf.executing_eagerly():
                raise
            self.reset()
            return getattr(self._tokenizer, method)(*args)

    def tokenize(self, texts):
        """`(batch,)` strings -> ragged int32 `(batch, None)` ids, without start or end."""
        texts = tf.convert_to_tensor(texts, tf.string)
        ids = self._run("tokenize", texts)
        if ids.shape.rank == 3:  # (batch, words, pieces) -> (batch, pieces)
            ids = ids.merge_dims(-2, -1)
        ids = tf.cast(ids, tf.int32)
        if self.vocabulary is not None:
            ids = tf.ragged.map_flat_values(tf.gather, self._to_vocabulary, ids)
        return ids

    def encode_sources(self, texts, max_length=None):
        """`(batch,)` strings -> ragged int32 ids ending with the end id, as every source enters
        the encoder (training pairs, `translate()`, the export); cut to `max_length` ids (the
        end id included) when given; the `source_prefix` tokens come first."""
        ids = self.tokenize(texts)
        rows, prefix = ids.nrows(), len(self._prefix_ids)
        if max_length is not None:
            ids = ids[:, : max_length - 1 - prefix]
        end = tf.RaggedTensor.from_tensor(tf.fill([rows, 1], END_ID))
        if not prefix:
            return tf.concat([ids, end], axis=1)
        prefix_ids = tf.RaggedTensor.from_tensor(tf.tile(self._prefix_ids[None], [rows, 1]))
        return tf.concat([prefix_ids, ids, end], axis=1)

    def detokenize(self, ids):
        """`(batch, length)` ids (dense or ragged) -> `(batch,)` strings.

        Stops at the first end id and drops pad and start ids, so the output of a decoder can be
        passed as it is.
        """
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(tf.convert_to_tensor(ids, tf.int32))
        ids = tf.cast(ids, tf.int32)
        before_end = tf.equal(tf.math.cumsum(tf.cast(tf.equal(ids, END_ID), tf.int32), axis=1), 0)
        keep = before_end & tf.not_equal(ids, PAD_ID) & tf.not_equal(ids, START_ID)
        ids = tf.ragged.boolean_mask(ids, keep)
        if self.vocabulary is not None:
            ids = tf.ragged.map_flat_values(tf.gather, self._to_sentencepiece, ids)
        return self._run("detokenize", ids)

    def tokens(self):
        """The token strings of the whole vocabulary, by id (Python)."""
        ids = tf.range(self.vocabulary_size)
        return [t.decode("utf-8") for t in self.id_to_token(ids).numpy()]

    def id_to_token(self, ids):
        """Ids -> their subword strings, for inspection."""
        if self.kind == "wordpiece":
            return tf.gather(tf.constant(list(self.model)), ids)
        if self.vocabulary is not None:
            return tf.gather(tf.constant(self.vocabulary), ids)
        return self._run("id_to_string", ids)

    def save(self, directory):
        """Writes `tokenizer.json` plus the model (`.model`) and/or vocabulary (`.vocab`, one
        token a line, JSON-quoted where a token's text would not survive as a line)."""
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"kind": self.kind, "vocabulary_size": self.vocabulary_size}
        if self.kind == "sentencepiece":
            (directory / "tokenizer.model").write_bytes(self.model)
            meta["file"] = "tokenizer.model"
            if self.vocabulary is not None:
                meta["vocabulary"] = "tokenizer.vocab"
                lines = "".join(json.dumps(token, ensure_ascii=False) + "\n"
                                for token in self.vocabulary)
                (directory / "tokenizer.vocab").write_text(lines, "utf-8")
        else:
            (directory / "tokenizer.vocab").write_text("\n".join(self.model) + "\n", "utf-8")
            meta["file"] = "tokenizer.vocab"
        (directory / "tokenizer.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, directory):
        directory = pathlib.Path(directory)
        meta_file = directory / "tokenizer.json"
        if not meta_file.exists():
            raise FileNotFoundError(f"No tokenizer in {directory}: {meta_file} is missing.")
        meta = json.loads(meta_file.read_text())
        path = directory / meta["file"]
        if meta["kind"] == "sentencepiece":
            vocabulary = None
            if "vocabulary" in meta:
                lines = (directory / meta["vocabulary"]).read_text("utf-8").splitlines()
                vocabulary = [json.loads(line) for line in lines]
            return cls("sentencepiece", path.read_bytes(), vocabulary)
        return cls("wordpiece", path.read_text("utf-8").splitlines())


def _id_tables(model, vocabulary):
    """int32 constants `(sentencepiece id -> vocabulary id, vocabulary id -> sentencepiece id)`;
    a piece missing on the other side maps to the unknown id there."""
    processor = spm.SentencePieceProcessor(model_proto=model)
    pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    index = {token: i for i, token in enumerate(vocabulary)}
    to_vocabulary = [index.get(piece, UNK_ID) for piece in pieces]
    # Where SentencePiece has no unknown piece (byte fallback aside, it always has), id 0.
    unknown = max(processor.unk_id(), 0)
    piece_ids = {piece: i for i, piece in enumerate(pieces)}
    to_sentencepiece = [piece_ids.get(token, unknown) for token in vocabulary]
    return tf.constant(to_vocabulary, tf.int32), tf.constant(to_sentencepiece, tf.int32)


def characters_kept_from_normalization(texts, min_share=1e-4):
    """Characters of `texts` that NFKC would rewrite, kept as they are when frequent.

    SentencePiece normalizes text with NFKC before learning or applying its vocabulary, so a
    model can never write a character NFKC rewrites. Where the data uses one often, that costs
    matches against every reference that has it: LibreOffice's German help writes menu entries
    as "Neu…" (U+2026), which NFKC turns into "Neu...": one in 1,500 characters of its training
    targets (mapping a trained model's "..." back to "…" gave +0.3 test BLEU). Such characters,
    made user-defined symbols, pass through SentencePiece's normalizer unchanged.

    Returns the characters (no whitespace or control characters, which normalization should
    still unify) that NFKC changes and that make up at least `min_share` of all characters.
    """
    counts = collections.Counter()
    for text in texts:
        counts.update(text)
    total = sum(counts.values())
    return sorted(
        char for char, count in counts.items()
        if count >= min_share * total
        and unicodedata.normalize("NFKC", char) != char
        and not char.isspace()
        and not unicodedata.category(char).startswith("C")
    )


def train_tokenizer(
    texts,
    kind="sentencepiece",
    vocabulary_size=8000,
    model_type="unigram",
    character_coverage=1.0,
    reserved_tokens=(),
):
    """Learns a subword vocabulary from `texts` (an iterable of strings).

    Training is deterministic: the same texts give the same vocabulary (one thread, no input
    sampling, no shuffling).

    Args:
        texts: training sentences.
        kind: "sentencepiece" or "wordpiece".
        vocabulary_size: size of the vocabulary, special ids included. SentencePiece may stop
            short of it on tiny corpora.
        model_type: "unigram" or "bpe" (SentencePiece only).
        character_coverage: share of characters SentencePiece covers; the rest map to unknown.
        reserved_tokens: tokens that get ids of their own after the special ones and are
            never split (a denoising task's mask, a tag on back-translated sources): in a
            text, each occurrence is that one token.

    Returns:
        A `Tokenizer`.
    """
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError("train_tokenizer received no non-empty text to learn a vocabulary from.")
    if kind == "sentencepiece":
        if model_type not in SENTENCEPIECE_MODEL_TYPES:
            raise ValueError(
                f"Unknown SentencePiece model_type {model_type!r}; expected one of "
                f"{', '.join(SENTENCEPIECE_MODEL_TYPES)}."
            )
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=model,
            vocab_size=vocabulary_size,
            model_type=model_type,
            character_coverage=character_coverage,
            normalization_rule_name="nmt_nfkc",
            user_defined_symbols=[*reserved_tokens, *(
                c for c in characters_kept_from_normalization(texts) if c not in reserved_tokens)],
            pad_id=PAD_ID,
            bos_id=START_ID,
            eos_id=END_ID,
            unk_id=UNK_ID,
            hard_vocab_limit=False,
            num_threads=1,
            input_sentence_size=0,
            shuffle_input_sentence=False,
            minloglevel=2,
        )
        return Tokenizer("sentencepiece", model.getvalue())
    if kind == "wordpiece":
        vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
            tf.data.Dataset.from_tensor_slices(texts).batch(1000),
            vocabulary_size,
            reserved_tokens=[*WORDPIECE_SPECIALS, *reserved_tokens],
        )
        return Tokenizer("wordpiece", list(vocabulary))
    raise ValueError(f"Unknown tokenizer {kind!r}; expected one of {', '.join(KINDS)}.")


def train_tokenizers(pairs, joint=True, **kwargs):
    """Source and target tokenizers from `(source, target)` pairs.

    With `joint=True` one tokenizer is learned on both sides and returned twice (needed to
    share embeddings); otherwise one per side. `kwargs` go to `train_tokenizer`.
    """
    sources = [s for s, _ in pairs]
    targets = [t for _, t in pairs]
    if joint:
        tokenizer = train_tokenizer(sources + targets, **kwargs)
        return tokenizer, tokenizer
    return train_tokenizer(sources, **kwargs), train_tokenizer(targets, **kwargs)
