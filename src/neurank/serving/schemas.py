"""The request and response bodies of the re-ranking routes, as pydantic models (FastAPI validates requests with
them and builds the OpenAPI page from them).

Two shapes clients already send:
- Cohere's and Jina's `rerank` (`POST /v1/rerank`, `POST /v2/rerank`): `{model, query, documents, top_n,
  return_documents}`, documents as strings or `{"text": ...}` objects; answered `{id, model, results: [{index,
  relevance_score, document?}], meta, usage}`.
- text-embeddings-inference's `POST /rerank`: `{query, texts, raw_scores, return_text, truncate}`; answered
  `[{index, score, text?}]`.
Both accept `first_stage_scores`, one raw first-stage score per document, for a model that reads them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class TextDocument(BaseModel):
    """A document as an object (Cohere's v1 and Jina accept these): its `text` is re-ranked, other fields ignored."""

    model_config = ConfigDict(extra="allow")
    text: str


class _Common(BaseModel):
    query: str = Field(description="The search query.")
    first_stage_scores: list[float] | None = Field(
        default=None,
        description="One first-stage (e.g. BM25) score per document, in the documents' order, for a model trained "
        "with that score as a feature or fused with it; without it the model's first stage is computed over the "
        "given documents. Ignored, with a warning, by a model that reads none.",
    )

    @field_validator("query")
    @classmethod
    def _query_not_empty(cls, query: str) -> str:
        if not query.strip():
            raise ValueError("the query must not be empty")
        return query


class RerankRequest(_Common):
    """Cohere's (v1, v2) and Jina's rerank request."""

    model: str | None = Field(default=None, description="Which served model; optional when one is served.")
    documents: list[str | TextDocument] = Field(
        min_length=1, description='Texts to re-rank, as strings or {"text": ...} objects.'
    )
    top_n: int | None = Field(default=None, ge=1, description="Return the best top_n results (default: all).")
    return_documents: bool = Field(default=False, description="Include each result's document text.")
    max_tokens_per_doc: int | None = Field(
        default=None,
        ge=1,
        description="Accepted for Cohere clients; the model reads the document length it was trained with.",
    )


class TeiRerankRequest(_Common):
    """text-embeddings-inference's rerank request."""

    model: str | None = Field(default=None, description="Which served model (an extension; default: the first).")
    texts: list[str] = Field(min_length=1, description="Texts to re-rank.")
    raw_scores: bool = Field(
        default=False,
        description="Scores as the model's logits instead of probabilities (a fused model's fused scores either way).",
    )
    return_text: bool = Field(default=False, description="Include each result's text.")
    truncate: bool = Field(
        default=False,
        description="Cut texts longer than the model reads to its length (as in training); false: answer 413.",
    )
    truncation_direction: Literal["right", "Right"] = Field(
        default="right", description="Only right truncation (keep the start), as the model was trained."
    )


class ResultDocument(BaseModel):
    text: str


class RerankResult(BaseModel):
    index: int = Field(description="Position of the document in the request.")
    relevance_score: float = Field(
        description="The sigmoid of the model's logit, a probability of relevance; for a model fused with its first "
        "stage, the fused score itself, in [0, 1] but normalised within the request (see meta.warnings)."
    )
    document: ResultDocument | None = None


class ApiVersion(BaseModel):
    version: str


class BilledUnits(BaseModel):
    search_units: int


class Tokens(BaseModel):
    input_tokens: int


class Meta(BaseModel):
    api_version: ApiVersion
    billed_units: BilledUnits
    tokens: Tokens
    warnings: list[str] = Field(description="Fused scores, texts without tokens, truncated inputs, ignored fields.")
    first_stage: str | None = Field(description="Where the first-stage scores came from: given, computed or none.")


class Usage(BaseModel):
    total_tokens: int


class RerankResponse(BaseModel):
    id: str
    model: str
    results: list[RerankResult] = Field(description="Best first.")
    meta: Meta
    usage: Usage


class TeiRank(BaseModel):
    index: int
    score: float = Field(
        description="Probability of relevance, or the model's logit with raw_scores; a fused model's fused score."
    )
    text: str | None = None


class ErrorBody(BaseModel):
    message: str


class Health(BaseModel):
    status: Literal["ok", "loading", "failed"]
    models: list[str]
    message: str | None = None
