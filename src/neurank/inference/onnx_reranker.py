"""`OnnxReranker`: a ranker exported by `neurank export` run by onnxruntime, with the same calls as `Reranker`.

    reranker = neurank.load_reranker("wikiqa.onnx")               # or OnnxReranker.from_file(...)
    reranker.rank("who wrote hamlet", ["Hamlet is a tragedy by Shakespeare.", "Paris is in France."])

Texts become ids through the text encoder stored in the file's metadata and are batched as `Reranker` batches them
(length buckets under a cell budget, `neurank.inference.scorer`); only the forward pass runs in onnxruntime instead
of PyTorch. `predict`, `rank`, `rerank` and `rerank_collection` are `BaseReranker`'s, shared with `Reranker`
(fusion included). An ONNX model runs in one process, on the CPU, at the precision it was exported in.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from neurank.collections import ScoredDoc
from neurank.data.examples import QueryExample
from neurank.inference.base import BaseReranker
from neurank.inference.checkpoint import CheckpointError
from neurank.inference.export import METADATA_FORMAT, METADATA_KEY, onnx_inputs, require_onnx
from neurank.inference.first_stage import FORMAT_1_FIRST_STAGE, FirstStageError, first_stage_from_entry
from neurank.inference.scorer import CPU_MAX_CELLS, InferenceOptions, Scorer, cpu_cell_budget
from neurank.models.registry import UnknownModelError, model_classes
from neurank.runtime.allocator import tune_malloc
from neurank.text import encoder_from_dict


class _OnnxRunner:
    """Calls the ONNX session the way `Scorer` calls a model: (ids, ids, masks, scores) tensors in, scores out."""

    def __init__(self, session, uses_score: bool, static_lengths):
        self.session = session
        self.uses_score = uses_score
        self.static_lengths = static_lengths

    def __call__(self, query_ids, doc_ids, query_mask, doc_mask, first_stage_score):
        # The graph derives its masks from PAD, which is what `pad_ids` wrote where the masks are False.
        feed = onnx_inputs(
            query_ids.numpy(), doc_ids.numpy(), first_stage_score.numpy(), self.uses_score, self.static_lengths
        )
        return torch.from_numpy(self.session.run(["score"], feed)[0])


class OnnxScorer(Scorer):
    """`Scorer` with an onnxruntime session in place of the PyTorch model (exact options only)."""

    def __init__(
        self,
        session,
        uses_score: bool,
        static_lengths,
        options: InferenceOptions | None = None,
        cpu_max_cells: int = CPU_MAX_CELLS,
    ):
        self.options = options or InferenceOptions()
        if not self.options.exact:
            raise ValueError("an ONNX model runs as exported: bf16 is a PyTorch option")
        self.device = torch.device("cpu")
        self.runner = _OnnxRunner(session, uses_score, static_lengths)
        self.cpu_max_cells = cpu_max_cells


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The `neurank` metadata of an exported ONNX file.

    Raises:
        FileNotFoundError: no such file. CheckpointError: not an ONNX file written by `neurank export`.
    """
    onnx, _ = require_onnx()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ONNX model not found")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # onnx raises DecodeError and others for a file that is not a model
        raise CheckpointError(f"{path}: not a readable ONNX model ({type(error).__name__}: {error})") from None
    entries = {entry.key: entry.value for entry in model.metadata_props}
    if METADATA_KEY not in entries:
        raise CheckpointError(f"{path}: an ONNX model without neurank metadata; export it with `neurank export`")
    metadata = json.loads(entries[METADATA_KEY])
    if metadata.get("format") != METADATA_FORMAT:
        raise CheckpointError(
            f"{path}: neurank ONNX metadata format {metadata.get('format')}, this neurank reads {METADATA_FORMAT}"
        )
    return metadata


class OnnxReranker(BaseReranker):
    """An exported ranker with its text encoder; `predict`, `rank`, `rerank` as `Reranker`.

    Args:
        path: a `.onnx` file written by `neurank export`.
        batch_size: pairs per forward pass; options: batching (exact options only).
        threads: onnxruntime intra-op threads (None: its default, one per physical core).
    """

    def __init__(
        self,
        path: str | Path,
        batch_size: int = 256,
        options: InferenceOptions | None = None,
        threads: int | None = None,
    ):
        _, ort = require_onnx()
        metadata = read_metadata(path)
        try:
            self.encoder = encoder_from_dict(metadata, source=path)
            self.model_name = metadata["model_name"]
            self.model_config = metadata["model_config"]
            self.input_names = list(metadata["inputs"])
            static_lengths = metadata.get("static_lengths")
        except (KeyError, TypeError) as error:
            raise CheckpointError(
                f"{path}: incomplete neurank ONNX metadata ({type(error).__name__}: {error})"
            ) from None
        session_options = ort.SessionOptions()
        if threads is not None:
            session_options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), session_options, providers=["CPUExecutionProvider"])
        tune_malloc()  # as `Reranker` on a CPU (neurank.runtime.allocator)
        self.metadata = metadata
        self.path = Path(path)
        self.batch_size = batch_size
        self.fusion_alpha = metadata.get("fusion_alpha")
        # Exports made before the first stage was recorded hold a format-1 checkpoint's: BM25 as 0.1 trained.
        try:
            self.first_stage = first_stage_from_entry(
                metadata.get("first_stage", FORMAT_1_FIRST_STAGE.to_dict()), str(path)
            )
        except FirstStageError as error:
            raise CheckpointError(str(error)) from None
        uses_score = "first_stage_score" in self.input_names
        # Batches are cut as for the PyTorch model: under its class's CPU cell budget.
        try:
            cpu_max_cells = cpu_cell_budget(model_classes(self.model_name)[0])
        except UnknownModelError:  # a model this neurank does not register: the default budget
            cpu_max_cells = CPU_MAX_CELLS
        self.scorer = OnnxScorer(
            session, uses_score, static_lengths, options or InferenceOptions(batch_size=batch_size), cpu_max_cells
        )

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        batch_size: int = 256,
        options: InferenceOptions | None = None,
        threads: int | None = None,
    ) -> OnnxReranker:
        """Load a `.onnx` file written by `neurank export` (`neurank.load_reranker` picks this for an ONNX file)."""
        return cls(path, batch_size, options, threads)

    @property
    def reads_first_stage_feature(self) -> bool:
        """Whether the exported model reads the first-stage score (an input of its graph)."""
        return "first_stage_score" in self.input_names

    def _score_run(self, examples: Sequence[QueryExample], batch_size: int | None) -> list[ScoredDoc]:
        return self.scorer.score_examples(examples, batch_size)
