"""Using a trained ranker: checkpoints, the batched scorer, fusion with the first stage, `Reranker` (PyTorch) and
`OnnxReranker` (onnxruntime), and ONNX export."""
