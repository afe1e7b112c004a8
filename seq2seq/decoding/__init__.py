"""Search strategies over a model's decode step, chosen by name."""

from seq2seq.decoding.beam_search import BeamSearch
from seq2seq.decoding.search import GreedySearch, Sampling, SearchResult, attention_of

STRATEGIES = {"greedy": GreedySearch, "beam": BeamSearch, "sampling": Sampling}


def get_strategy(name, **options):
    """The strategy `name` ("greedy", "beam", "sampling") built with `options`."""
    if name not in STRATEGIES:
        raise ValueError(
            f"Unknown decoding strategy {name!r}; expected one of {', '.join(STRATEGIES)}."
        )
    return STRATEGIES[name](**options)


def strategy_options(decoding, **overrides):
    """`(name, options)` for `get_strategy` from a `DecodingConfig` (`seq2seq.config`): the
    settings of its strategy only, updated with those of `overrides` (e.g. a per-request
    alpha) that the strategy has; the others do not apply to it and are ignored."""
    options = {"min_length": decoding.min_length}
    if decoding.strategy == "beam":
        options.update(beam_size=decoding.beam_size, alpha=decoding.alpha,
                       n_best=decoding.n_best, coverage_penalty=decoding.coverage_penalty)
    elif decoding.strategy == "sampling":
        options.update(temperature=decoding.temperature, top_k=decoding.top_k,
                       top_p=decoding.top_p, seed=decoding.seed)
    return decoding.strategy, {**options, **{k: v for k, v in overrides.items() if k in options}}


def generate(model, source_ids, strategy, max_length=None, return_alignments=False,
             length_limit=None):
    """Decodes `source_ids` `(batch, source_length)` with `strategy` (a strategy object).

    Args:
        model: a `Transformer` (anything with `init_cache` and `next`).
        source_ids: `(batch, source_length)` int ids, 0-padded.
        strategy: e.g. `BeamSearch(beam_size=4)`.
        max_length: length of the output buffer, start id included; defaults to the model's.
        return_alignments: also return the cross-attention of every decoded token
            (`SearchResult.alignments`); always on for a strategy that needs it (the coverage
            penalty).
        length_limit: a scalar (a tensor too) <= `max_length`: decode as if `max_length` were
            this, inside the `max_length` buffer (a per-request maximum in a fixed graph).

    Returns:
        A `SearchResult`.
    """
    from keras import ops

    max_length = max_length or model.max_length
    attention = return_alignments or getattr(strategy, "needs_attention", False)
    cache = model.init_cache(source_ids, max_length, attention=attention)
    return strategy(model.next, cache, ops.shape(source_ids)[0], max_length,
                    length_limit=length_limit)


__all__ = ["BeamSearch", "GreedySearch", "STRATEGIES", "Sampling", "SearchResult",
           "attention_of", "generate", "get_strategy", "strategy_options"]
