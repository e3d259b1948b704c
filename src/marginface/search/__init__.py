"""k-nearest-neighbour search by cosine similarity behind one small interface (FAISS inside).

Metrics take a `Search` object (or a zero-argument factory of them) and never import FAISS.
Pick one in a config (`search=flat|hnsw|ivf`, conf/search/*.yaml) or with `make_search(name)`.
"""

from __future__ import annotations

from typing import Any

from marginface.search.base import FaissSearch, Search, default_num_threads, faiss_threads
from marginface.search.flat import FlatSearch
from marginface.search.hnsw import HNSWSearch
from marginface.search.ivf import IVFSearch
from marginface.search.ivfpq import IVFPQSearch

SEARCHES: dict[str, type[FaissSearch]] = {
    "flat": FlatSearch,
    "hnsw": HNSWSearch,
    "ivf": IVFSearch,
    "ivfpq": IVFPQSearch,
}


def make_search(name: str, **params: Any) -> FaissSearch:
    """Build the search called `name` (a key of SEARCHES) with constructor `params`."""
    try:
        cls = SEARCHES[name]
    except KeyError:
        raise ValueError(
            f"unknown search {name!r}; choose one of {sorted(SEARCHES)} (conf/search/)"
        ) from None
    return cls(**params)


__all__ = [
    "SEARCHES",
    "FaissSearch",
    "FlatSearch",
    "HNSWSearch",
    "IVFPQSearch",
    "IVFSearch",
    "Search",
    "default_num_threads",
    "faiss_threads",
    "make_search",
]
