"""The re-ranking HTTP service (`neurank serve`): Cohere/Jina and text-embeddings-inference request shapes over any
re-ranker `neurank.load_reranker` loads. Thin over `neurank.inference`; needs the `serve` extra."""
