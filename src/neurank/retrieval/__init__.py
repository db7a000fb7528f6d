"""The first stage: BM25 through bm25s. Returns runs, never tensors."""

from neurank.retrieval.bm25 import BM25Config, BM25Retriever, bm25_run, score_candidates

__all__ = ["BM25Config", "BM25Retriever", "bm25_run", "score_candidates"]
