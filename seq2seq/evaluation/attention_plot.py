"""Cross-attention heatmaps (matplotlib), for notebooks and TensorBoard."""

import io

import matplotlib

matplotlib.use("Agg")  # no display needed; notebooks still show the returned figure

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_attention(weights, source_tokens, target_tokens, title=None, max_tokens=48):
    """Heatmap of one sentence pair's attention.

    A long pair shows its first `max_tokens` tokens on each axis (the axis label says how many
    there were): a cell stays big enough to read its tokens' labels.

    Args:
        weights: `(target_length, source_length)` probabilities (e.g. heads averaged from
            `Transformer.cross_attention`); rows and columns beyond the tokens are cut.
        source_tokens: the source subwords (columns).
        target_tokens: the target subwords (rows).
        title: optional figure title.
        max_tokens: the most tokens shown on an axis.

    Returns:
        A matplotlib `Figure`.
    """
    weights = np.asarray(weights)[: len(target_tokens), : len(source_tokens)]

    def label(name, tokens):
        if len(tokens) <= max_tokens:
            return name
        return f"{name} (first {max_tokens} of {len(tokens)} tokens)"

    xlabel, ylabel = label("source", source_tokens), label("target", target_tokens)
    source_tokens, target_tokens = source_tokens[:max_tokens], target_tokens[:max_tokens]
    weights = weights[:max_tokens, :max_tokens]
    figure, axes = plt.subplots(
        figsize=(1.5 + 0.3 * len(source_tokens), 1.5 + 0.3 * len(target_tokens))
    )
    axes.imshow(weights, cmap="viridis", vmin=0.0, vmax=max(float(weights.max()), 1e-6))
    axes.set_xticks(range(len(source_tokens)), source_tokens, rotation=90)
    axes.set_yticks(range(len(target_tokens)), target_tokens)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if title:
        axes.set_title(title)
    figure.tight_layout()
    return figure


def figure_to_png(figure):
    """PNG bytes of a figure (closes it), e.g. for `tf.summary.image` via `tf.image.decode_png`."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return buffer.getvalue()
