"""neurank: interaction-based neural re-ranking with a BM25 first stage and ir_measures evaluation.

Data flows one way: files -> records -> tokens -> ids -> padded tensors + masks -> scores -> run -> metrics.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what the lazy names below are, for type checkers
    from neurank.inference import BaseReranker, OnnxReranker, Reranker, load_reranker

try:
    __version__ = version("neurank")  # written once, in pyproject.toml
except PackageNotFoundError:  # a source tree on sys.path that was never installed (`pip install -e .` fixes it)
    __version__ = "0+unknown"

# `neurank.load_reranker` and the re-rankers without importing torch and the models at `import neurank`.
_LAZY = ("BaseReranker", "OnnxReranker", "Reranker", "load_reranker")
__all__ = ["BaseReranker", "OnnxReranker", "Reranker", "__version__", "load_reranker"]


def __getattr__(name: str):
    if name in _LAZY:
        import neurank.inference

        return getattr(neurank.inference, name)
    raise AttributeError(f"module 'neurank' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
