"""All mask arithmetic of the toolkit lives here.

Masks are boolean tensors where `True` means "may attend" (keys) or "is a real token" (ids).
Attention masks have shape `(batch, query_length, key_length)`; they are broadcast over heads by
the attention layer. Pad id 0 marks padding everywhere.
"""

from keras import ops

PAD_ID = 0

# Added to the logits of masked keys before the softmax, which always runs in float32.
# Finite (not -inf) so that a fully masked row yields a uniform distribution instead of NaN.
MASK_LOGIT = -1e9


def padding_mask(ids, pad_id=PAD_ID):
    """`(batch, length)` ids -> `(batch, length)` bool, True at real tokens."""
    return ops.not_equal(ids, pad_id)


def key_padding_mask(key_mask, query_length):
    """`(batch, key_length)` bool -> `(batch, query_length, key_length)` attention mask."""
    return ops.repeat(ops.expand_dims(key_mask, 1), query_length, axis=1)


def causal_mask(query_length, key_length, offset=0):
    """`(1, query_length, key_length)` bool: query `i` (at absolute position `offset + i`) sees
    keys `0 .. offset + i`.

    `offset` is the absolute position of the first query; it is a tensor while decoding step by
    step against a fixed-length cache.
    """
    query_positions = ops.arange(query_length) + offset
    key_positions = ops.arange(key_length)
    return ops.expand_dims(
        ops.greater_equal(
            ops.expand_dims(query_positions, 1), ops.expand_dims(key_positions, 0)
        ),
        0,
    )


def self_attention_mask(key_mask, causal=False):
    """Mask for self-attention over one padded sequence.

    Args:
        key_mask: `(batch, length)` bool, True at real tokens.
        causal: also hide future positions (decoder self-attention).

    Returns:
        `(batch, length, length)` bool.
    """
    length = ops.shape(key_mask)[1]
    mask = key_padding_mask(key_mask, length)
    if causal:
        mask = ops.logical_and(mask, causal_mask(length, length))
    return mask


def cross_attention_mask(source_mask, query_length):
    """Decoder queries over encoder keys: `(batch, query_length, source_length)` bool."""
    return key_padding_mask(source_mask, query_length)


def masked_softmax(scores, mask=None):
    """Softmax over the last axis in float32, hiding masked keys.

    Args:
        scores: `(batch, heads, query_length, key_length)` attention logits, any float dtype.
        mask: `(batch, query_length, key_length)` bool or None.

    Returns:
        float32 probabilities of the shape of `scores`. float32 keeps the softmax exact under
        mixed_float16, where `MASK_LOGIT` would overflow.
    """
    scores = ops.cast(scores, "float32")
    if mask is not None:
        mask = ops.expand_dims(mask, 1)  # (batch, 1, query_length, key_length): all heads
        scores = ops.where(mask, scores, MASK_LOGIT)
    return ops.softmax(scores, axis=-1)
