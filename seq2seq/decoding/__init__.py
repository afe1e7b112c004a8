"""Search strategies over a model's decode step: one strategy object, built once from the
config (`from_config`) and handed as it is to `translate()`, the CLI and the export."""

from seq2seq.decoding.beam_search import BeamSearch
from seq2seq.decoding.search import (
    GreedySearch,
    Sampling,
    SearchResult,
    Strategy,
    attention_of,
)

STRATEGIES = {strategy.name: strategy for strategy in (GreedySearch, BeamSearch, Sampling)}


def build(name, **options):
    """The strategy `name` ("greedy", "beam", "sampling") built with `options`, each a setting
    it takes (see its `FIELDS`)."""
    if name not in STRATEGIES:
        raise ValueError(
            f"Unknown decoding strategy {name!r}; expected one of {', '.join(STRATEGIES)}."
        )
    strategy = STRATEGIES[name]
    unknown = sorted(set(options) - set(strategy.FIELDS))
    if unknown:
        raise ValueError(f"{', '.join(unknown)} with decoding strategy {name!r}; expected its "
                         f"settings: {', '.join(strategy.FIELDS)}.")
    return strategy(**options)


def from_config(decoding, **overrides):
    """The strategy of a `DecodingConfig` (`seq2seq.config`): its `decoding.strategy` with the
    config's values of the settings that strategy takes, updated with those of `overrides`
    (e.g. a per-request alpha or n_best) that it takes; the others do not apply to it and are
    ignored."""
    fields = STRATEGIES[decoding.strategy].FIELDS
    options = {field: getattr(decoding, field) for field in fields}
    return build(decoding.strategy, **options).replace(**overrides)


def for_call(default, strategy=None, **options):
    """The strategy of one call (e.g. `translate(texts, strategy, **options)`): `strategy` (a
    `Strategy`, or a name), default `default`, with `options` replacing its settings (an
    option it does not take is an error). A name switches the kind and keeps the settings of
    `default` that kind takes (e.g. `max_length`)."""
    if not isinstance(strategy, str):
        strategy = strategy or default
        if not options:
            return strategy
        default, strategy = strategy, None
    config = default.get_config()
    name = strategy or config.pop("strategy")
    fields = STRATEGIES[name].FIELDS if name in STRATEGIES else ()
    kept = {field: value for field, value in config.items() if field in fields}
    return build(name, **{**kept, **options})


def generate(model, source_ids, strategy, max_length=None, return_alignments=False,
             length_limit=None, prefix=None, constraints=None):
    """Decodes `source_ids` `(batch, source_length)` with `strategy` (a strategy object).

    Args:
        model: a `Transformer` (anything with `init_cache`, `next` and `max_length`).
        source_ids: `(batch, source_length)` int ids, 0-padded.
        strategy: e.g. `BeamSearch(beam_size=4)`.
        max_length: length of the output buffer, start id included; default
            `strategy.output_length(model)`, the one place that default is resolved.
        return_alignments: also return the cross-attention of every decoded token
            (`SearchResult.alignments`); always on for a strategy that needs it (the coverage
            penalty).
        length_limit: a scalar (a tensor too) <= `max_length`: decode as if `max_length` were
            this, inside the `max_length` buffer (a per-request maximum in a fixed graph).
        prefix: None, or int32 `(batch, max_length)` forced target tokens (0: free): token j
            of a prefix at position j + 1.
        constraints: None, or int32 `(batch, constraints, phrase_length)` target phrases every
            output must contain (beam search; `seq2seq.decoding.constraints`).

    Returns:
        A `SearchResult`.
    """
    from keras import ops

    max_length = max_length or strategy.output_length(model)
    attention = return_alignments or getattr(strategy, "needs_attention", False)
    cache = model.init_cache(source_ids, max_length, attention=attention)
    return strategy(model.next, cache, ops.shape(source_ids)[0], max_length,
                    length_limit=length_limit, prefix=prefix, constraints=constraints)


__all__ = ["BeamSearch", "GreedySearch", "STRATEGIES", "Sampling", "SearchResult", "Strategy",
           "attention_of", "build", "for_call", "from_config",
           "generate"]
