"""neurank: interaction-based neural re-ranking with a BM25 first stage and ir_measures evaluation.

Data flows one way: files -> records -> tokens -> ids -> padded tensors + masks -> scores -> run -> metrics.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `from neurank import Reranker` without importing torch and the models when only the version is wanted.
    if name == "Reranker":
        from neurank.inference.reranker import Reranker

        return Reranker
    raise AttributeError(f"module 'neurank' has no attribute {name!r}")
