"""The encoder-decoder Transformer."""

import keras
from keras import ops

from seq2seq.layers import masking
from seq2seq.layers.decoder_layer import DecoderLayer
from seq2seq.layers.embedding import TokenAndPositionEmbedding
from seq2seq.layers.encoder_layer import EncoderLayer
from seq2seq.layers.layer_norm import LayerNormalization
from seq2seq.models.sizes import size_kwargs


@keras.saving.register_keras_serializable(package="seq2seq")
class Transformer(keras.Model):
    """Encoder-decoder Transformer (Vaswani et al., 2017) with a cached decode step.

    Token id 0 is padding in source and target: it is masked out of every attention, so the
    padded tail of a sequence never changes the logits at real positions.

    Args:
        source_vocabulary_size: size of the source vocabulary.
        target_vocabulary_size: size of the target vocabulary.
        num_encoder_layers: number of `EncoderLayer`s.
        num_decoder_layers: number of `DecoderLayer`s.
        hidden_dim: model width (d_model).
        num_heads: attention heads per layer.
        intermediate_dim: feed-forward width (d_ff).
        dropout: residual and embedding dropout.
        attention_dropout: dropout on attention probabilities.
        activation_dropout: dropout inside the feed-forward blocks.
        activation: feed-forward activation.
        norm_first: pre-norm layers (plus a final LayerNormalization after each stack) when
            True, post-norm (Vaswani et al.) when False.
        position_embedding: "sinusoidal", "sinusoidal_halves" (Marian's layout) or "learned".
        max_length: longest source or target sequence (learned positions, decoding cache).
        share_embeddings: one token table for source and target (needs one joint vocabulary).
        tie_output: project decoder states to logits through the target token table.
        layer_norm_epsilon: epsilon of every LayerNormalization.
        scale_embeddings: multiply token embeddings by `sqrt(hidden_dim)`.
        output_bias: add a learned bias to the output logits.
        kernel_initializer: initializer of every projection kernel; default Glorot-uniform.
            Token tables are initialised N(0, hidden_dim ** -0.5) (see
            `TokenAndPositionEmbedding`); biases zero; LayerNormalization gamma one, beta zero.

    Call arguments:
        inputs: `(source_ids, target_in_ids)`, int `(batch, source_length)` and
            `(batch, target_length)`; `target_in_ids` is the target shifted right (starts with
            the start id).
        training: dropout on or off.

    Returns:
        float32 logits `(batch, target_length, target_vocabulary_size)`.

    Example:
    >>> model = Transformer.from_size("tiny", source_vocabulary_size=50,
    ...                               target_vocabulary_size=60)
    >>> model((np.array([[4, 5, 0]]), np.array([[1, 7]]))).shape
    (1, 2, 60)
    """

    def __init__(
        self,
        source_vocabulary_size,
        target_vocabulary_size,
        num_encoder_layers=6,
        num_decoder_layers=6,
        hidden_dim=512,
        num_heads=8,
        intermediate_dim=2048,
        dropout=0.1,
        attention_dropout=0.0,
        activation_dropout=0.0,
        activation="relu",
        norm_first=True,
        position_embedding="sinusoidal",
        max_length=256,
        share_embeddings=False,
        tie_output=True,
        layer_norm_epsilon=1e-5,
        kernel_initializer="glorot_uniform",
        scale_embeddings=True,
        output_bias=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if share_embeddings and source_vocabulary_size != target_vocabulary_size:
            raise ValueError(
                "share_embeddings=True needs one joint vocabulary, but source_vocabulary_size="
                f"{source_vocabulary_size} and target_vocabulary_size={target_vocabulary_size}."
            )
        self.source_vocabulary_size = source_vocabulary_size
        self.target_vocabulary_size = target_vocabulary_size
        self.num_encoder_layers = num_encoder_layers
        self.num_decoder_layers = num_decoder_layers
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.activation_dropout = activation_dropout
        self.activation = activation
        self.norm_first = norm_first
        self.position_embedding = position_embedding
        self.max_length = max_length
        self.share_embeddings = share_embeddings
        self.tie_output = tie_output
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.scale_embeddings = scale_embeddings
        self.output_bias = output_bias

        def embedding(vocabulary_size, name, output=False):
            # Only the target's projects outputs: a source table of its own has no output
            # matrix or bias (tie_weights keeps it from creating one).
            return TokenAndPositionEmbedding(
                vocabulary_size,
                hidden_dim,
                max_length=max_length,
                position_embedding=position_embedding,
                dropout=dropout,
                tie_output=tie_output or not output,
                scale_embeddings=scale_embeddings,
                output_bias=output_bias and output,
                dtype=self.dtype_policy,
                name=name,
            )

        self.target_embedding = embedding(target_vocabulary_size, "target_embedding",
                                          output=True)
        self.source_embedding = (
            self.target_embedding
            if share_embeddings
            else embedding(source_vocabulary_size, "source_embedding")
        )
        block = dict(
            num_heads=num_heads,
            intermediate_dim=intermediate_dim,
            dropout=dropout,
            attention_dropout=attention_dropout,
            activation_dropout=activation_dropout,
            activation=activation,
            norm_first=norm_first,
            layer_norm_epsilon=layer_norm_epsilon,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
        )
        self.encoder_layers = [
            EncoderLayer(name=f"encoder_layer_{i}", **block) for i in range(num_encoder_layers)
        ]
        self.decoder_layers = [
            DecoderLayer(name=f"decoder_layer_{i}", **block) for i in range(num_decoder_layers)
        ]
        # Pre-norm stacks end un-normalised; post-norm layers already end with a norm.
        self.encoder_norm = self.decoder_norm = None
        if norm_first:
            norm = dict(epsilon=layer_norm_epsilon, dtype=self.dtype_policy)
            self.encoder_norm = LayerNormalization(name="encoder_norm", **norm)
            self.decoder_norm = LayerNormalization(name="decoder_norm", **norm)

    @classmethod
    def from_size(cls, size, **kwargs):
        """A Transformer of the named size ("tiny", "small", "base", "big"); `kwargs` override."""
        return cls(**{**size_kwargs(size), **kwargs})

    def build(self, inputs_shape):
        source_shape, target_shape = inputs_shape
        self.source_embedding.build(source_shape)
        self.target_embedding.build(target_shape)
        encoder_shape = (*source_shape, self.hidden_dim)
        decoder_shape = (*target_shape, self.hidden_dim)
        for layer in self.encoder_layers:
            layer.build(encoder_shape)
        for layer in self.decoder_layers:
            layer.build(decoder_shape, encoder_shape)
        if self.norm_first:
            self.encoder_norm.build(encoder_shape)
            self.decoder_norm.build(decoder_shape)

    def call(self, inputs, training=None):
        source_ids, target_ids = inputs
        encoder_output, source_mask = self.encode(source_ids, training=training)
        logits, *_ = self._decode(
            target_ids,
            source_mask,
            encoder_output=encoder_output,
            decoder_padding_mask=masking.padding_mask(target_ids),
            training=training,
        )
        return logits

    def encode(self, source_ids, training=None):
        """`(batch, source_length)` ids -> `(encoder_output, source_mask)`.

        `encoder_output` is `(batch, source_length, hidden_dim)` in the compute dtype;
        `source_mask` is `(batch, source_length)` bool, True at real tokens.
        """
        source_mask = masking.padding_mask(source_ids)
        x = self.source_embedding(source_ids, training=training)
        for layer in self.encoder_layers:
            x = layer(x, encoder_padding_mask=source_mask, training=training)
        if self.norm_first:
            x = self.encoder_norm(x)
        return x, source_mask

    def cross_attention(self, source_ids, target_in_ids):
        """Cross-attention probabilities of the last decoder layer, for alignments and plots.

        Args:
            source_ids: `(batch, source_length)`.
            target_in_ids: `(batch, target_length)`, e.g. a decoded hypothesis with its start
                id. Cached decoding attends exactly as this full pass does, so these are the
                alignments of the search that produced the hypothesis.

        Returns:
            float32 `(batch, heads, target_length, source_length)`.
        """
        encoder_output, source_mask = self.encode(source_ids)
        *_, attention = self._decode(
            target_in_ids,
            source_mask,
            encoder_output=encoder_output,
            decoder_padding_mask=masking.padding_mask(target_in_ids),
            return_cross_attention=True,
        )
        return ops.cast(attention, "float32")

    def init_cache(self, source_ids, max_length=None, attention=False):
        """Encodes `source_ids` and returns the decoding cache of `next()`.

        Args:
            source_ids: `(batch, source_length)`.
            max_length: target positions the self-attention cache holds (start id included).
            attention: also keep, in the cache, the cross-attention of the last step (for
                alignments and the coverage penalty of the searches).

        Returns:
            A dict of tensors, each with the batch first (beam search tiles them):
            "self_attention": per decoder layer, zeros `(batch, 2, heads, max_length, head_dim)`;
            "cross_attention": per decoder layer, the encoder's keys and values
            `(batch, 2, heads, source_length, head_dim)`, computed once here;
            "source_mask": `(batch, source_length)` bool;
            with `attention`, "attention": float32 `(batch, source_length)`, the last decoder
            layer's cross-attention (mean over heads) of the latest position `next()` ran.
        """
        max_length = max_length or self.max_length
        if not self.built:  # decoding a freshly constructed model
            self.build((tuple(source_ids.shape), (source_ids.shape[0], 1)))
            self.built = True
        encoder_output, source_mask = self.encode(source_ids)
        batch = ops.shape(source_ids)[0]
        head_dim = self.hidden_dim // self.num_heads
        empty = ops.zeros(
            (batch, 2, self.num_heads, max_length, head_dim), dtype=self.compute_dtype
        )
        cache = {
            "self_attention": tuple(empty for _ in self.decoder_layers),
            "cross_attention": tuple(
                layer.cross_attention.compute_key_value(encoder_output)
                for layer in self.decoder_layers
            ),
            "source_mask": source_mask,
        }
        if attention:
            cache["attention"] = ops.zeros(ops.shape(source_mask), "float32")
        return cache

    def decode_with_cache(self, target_ids, cache, index):
        """Runs target positions `index .. index + n - 1` against the cache.

        Args:
            target_ids: `(batch, n)` ids at those positions (n = 1 while decoding; n > 1 to
                prefill a forced prefix).
            cache: from `init_cache()` or a previous call.
            index: int or scalar int tensor, the position of `target_ids[:, 0]`.

        Returns:
            `(logits, hidden, cache)`: float32 `(batch, n, vocabulary)`,
            `(batch, n, hidden_dim)` and the updated cache (its "attention", when it has one,
            is that of the last of the n positions).
        """
        keep_attention = "attention" in cache
        logits, hidden, cache, attention = self._decode(
            target_ids, cache["source_mask"], cache=cache, index=index,
            return_cross_attention=keep_attention,
        )
        if keep_attention:
            cache["attention"] = ops.mean(ops.cast(attention[:, :, -1], "float32"), axis=1)
        return logits, hidden, cache

    def next(self, prompt, cache, index):
        """The decode step of the sampling loop (keras-hub's `next` contract).

        Reads the token at `index - 1` of `prompt`, writes its keys and values into the cache
        and returns the distribution of the token at `index`.

        Args:
            prompt: `(batch, max_length)` ids decoded so far (position 0 holds the start id).
            cache: from `init_cache()` or a previous step.
            index: scalar int tensor, the position to predict (>= 1).

        Returns:
            `(logits, hidden, cache)`: float32 `(batch, vocabulary)`, `(batch, hidden_dim)`,
            the updated cache.
        """
        batch = ops.shape(prompt)[0]
        token = ops.slice(prompt, [0, index - 1], [batch, 1])
        logits, hidden, cache = self.decode_with_cache(token, cache, index - 1)
        return logits[:, 0], hidden[:, 0], cache

    def _decode(
        self,
        target_ids,
        source_mask,
        encoder_output=None,
        decoder_padding_mask=None,
        cache=None,
        index=0,
        training=None,
        return_cross_attention=False,
    ):
        """The one decoder path of training, full-pass inference and the cached step.

        Returns `(logits, hidden, cache, cross_attention)`; the cache is None without one, the
        last layer's cross-attention None unless `return_cross_attention`.
        """
        x = self.target_embedding(target_ids, start_index=index, training=training)
        self_caches, attention = [], None
        for i, layer in enumerate(self.decoder_layers):
            if cache is None:
                x = layer(
                    x,
                    encoder_output,
                    decoder_padding_mask=decoder_padding_mask,
                    encoder_padding_mask=source_mask,
                    training=training,
                    return_cross_attention=return_cross_attention,
                )
                if return_cross_attention:
                    x, attention = x
            else:
                x, self_cache, *attention = layer(
                    x,
                    encoder_padding_mask=source_mask,
                    self_attention_cache=cache["self_attention"][i],
                    self_attention_cache_update_index=index,
                    cross_attention_cache=cache["cross_attention"][i],
                    training=training,
                    return_cross_attention=return_cross_attention,
                )
                attention = attention[0] if attention else None
                self_caches.append(self_cache)
        if self.norm_first:
            x = self.decoder_norm(x)
        if cache is not None:
            cache = {**cache, "self_attention": tuple(self_caches)}
        return self.target_embedding.logits(x), x, cache, attention

    def get_config(self):
        return {
            **super().get_config(),
            "source_vocabulary_size": self.source_vocabulary_size,
            "target_vocabulary_size": self.target_vocabulary_size,
            "num_encoder_layers": self.num_encoder_layers,
            "num_decoder_layers": self.num_decoder_layers,
            "hidden_dim": self.hidden_dim,
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "dropout": self.dropout,
            "attention_dropout": self.attention_dropout,
            "activation_dropout": self.activation_dropout,
            "activation": self.activation,
            "norm_first": self.norm_first,
            "position_embedding": self.position_embedding,
            "max_length": self.max_length,
            "share_embeddings": self.share_embeddings,
            "tie_output": self.tie_output,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "scale_embeddings": self.scale_embeddings,
            "output_bias": self.output_bias,
        }
