"""Cross-attention heatmaps (matplotlib), for notebooks and TensorBoard."""

import io

import matplotlib

matplotlib.use("Agg")  # no display needed; notebooks still show the returned figure

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_attention(weights, source_tokens, target_tokens, title=None):
    """Heatmap of one sentence pair's attention.

    Args:
        weights: `(target_length, source_length)` probabilities (e.g. heads averaged from
            `Transformer.cross_attention`); rows and columns beyond the tokens are cut.
        source_tokens: the source subwords (columns).
        target_tokens: the target subwords (rows).
        title: optional figure title.

    Returns:
        A matplotlib `Figure`.
    """
    weights = np.asarray(weights)[: len(target_tokens), : len(source_tokens)]
    figure, axes = plt.subplots(
        figsize=(1 + 0.35 * len(source_tokens), 1 + 0.35 * len(target_tokens))
    )
    axes.imshow(weights, cmap="viridis", vmin=0.0, vmax=max(float(weights.max()), 1e-6))
    axes.set_xticks(range(len(source_tokens)), source_tokens, rotation=90)
    axes.set_yticks(range(len(target_tokens)), target_tokens)
    axes.set_xlabel("source")
    axes.set_ylabel("target")
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
