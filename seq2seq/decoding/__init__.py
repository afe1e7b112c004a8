"""Search strategies over a model's decode step, chosen by name."""

from seq2seq.decoding.beam_search import BeamSearch
from seq2seq.decoding.search import GreedySearch, Sampling, SearchResult

STRATEGIES = {"greedy": GreedySearch, "beam": BeamSearch, "sampling": Sampling}


def get_strategy(name, **options):
    """The strategy `name` ("greedy", "beam", "sampling") built with `options`."""
    if name not in STRATEGIES:
        raise ValueError(
            f"Unknown decoding strategy {name!r}; expected one of {', '.join(STRATEGIES)}."
        )
    return STRATEGIES[name](**options)


def generate(model, source_ids, strategy, max_length=None):
    """Decodes `source_ids` `(batch, source_length)` with `strategy` (a strategy object).

    Returns:
        A `SearchResult`; `max_length` (start id included) defaults to the model's.
    """
    from keras import ops

    max_length = max_length or model.max_length
    cache = model.init_cache(source_ids, max_length)
    return strategy(model.next, cache, ops.shape(source_ids)[0], max_length)


__all__ = ["BeamSearch", "GreedySearch", "STRATEGIES", "Sampling", "SearchResult", "generate",
           "get_strategy"]
