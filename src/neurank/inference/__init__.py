"""Using a trained ranker: `load_reranker` (one entry point for a PyTorch checkpoint or an exported ONNX model), the
two re-rankers it returns (`Reranker`, `OnnxReranker`, siblings under `BaseReranker`), checkpoints, the batched
scorer, fusion with the first stage, and ONNX export."""

from neurank.inference.base import BaseReranker
from neurank.inference.loader import load_reranker, model_file_format
from neurank.inference.onnx_reranker import OnnxReranker
from neurank.inference.reranker import Reranker

__all__ = ["BaseReranker", "OnnxReranker", "Reranker", "load_reranker", "model_file_format"]
