"""Named model sizes. Each is a dict of `Transformer` keyword arguments."""

SIZES = {
    # For tests: every code path, a few thousand weights.
    "tiny": dict(
        num_encoder_layers=1, num_decoder_layers=1, hidden_dim=32, num_heads=2, intermediate_dim=64
    ),
    # The CPU recipes' widths (they cut it to 1+1 layers: in a 10-minute CPU budget the
    # shallower model trains on more tokens and ends ahead; docs/results.md).
    "small": dict(
        num_encoder_layers=3,
        num_decoder_layers=3,
        hidden_dim=256,
        num_heads=4,
        intermediate_dim=1024,
    ),
    # Transformer-base (Vaswani et al., 2017).
    "base": dict(
        num_encoder_layers=6,
        num_decoder_layers=6,
        hidden_dim=512,
        num_heads=8,
        intermediate_dim=2048,
    ),
    # Transformer-big (Vaswani et al., 2017).
    "big": dict(
        num_encoder_layers=6,
        num_decoder_layers=6,
        hidden_dim=1024,
        num_heads=16,
        intermediate_dim=4096,
    ),
}


def size_kwargs(name):
    """The `Transformer` keyword arguments of the size `name`."""
    if name not in SIZES:
        raise ValueError(f"Unknown model size {name!r}; expected one of {', '.join(SIZES)}.")
    return dict(SIZES[name])
