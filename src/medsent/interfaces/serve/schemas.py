"""Request and response bodies of the service, with the server's limits written into the schema."""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator

from medsent.data.clean import TEXT_PATTERN, is_blank

RUN_ENV = "MEDSENT_RUN_DIR"
MAX_CHARS_ENV = "MEDSENT_MAX_TEXT_CHARS"
MAX_BATCH_ENV = "MEDSENT_MAX_BATCH"
THREADS_ENV = "MEDSENT_THREADS"
INFER_BATCH_ENV = "MEDSENT_INFER_BATCH"
DEFAULT_INFER_BATCH = 64
DEFAULT_MAX_CHARS = 20_000
DEFAULT_MAX_BATCH = 256
DEFAULT_MAX_QUEUE = 512
MAX_QUEUE_ENV = "MEDSENT_MAX_QUEUE"
GRACE_S = 30


class Limits(BaseModel):
    max_text_chars: int = Field(default=DEFAULT_MAX_CHARS, ge=1)
    max_batch: int = Field(default=DEFAULT_MAX_BATCH, ge=1)
    # Texts waiting for or in the model; past it requests get 503 + Retry-After at once.
    max_queue: int = Field(default=DEFAULT_MAX_QUEUE, ge=1)

    @property
    def max_body_bytes(self) -> int:
        """A request body can never legitimately exceed this (4 bytes per char, JSON overhead)."""
        return self.max_batch * (4 * self.max_text_chars + 64) + 4096

    @classmethod
    def from_env(cls) -> Limits:
        return cls(
            max_text_chars=int(os.environ.get(MAX_CHARS_ENV, DEFAULT_MAX_CHARS)),
            max_batch=int(os.environ.get(MAX_BATCH_ENV, DEFAULT_MAX_BATCH)),
            max_queue=int(os.environ.get(MAX_QUEUE_ENV, DEFAULT_MAX_QUEUE)),
        )


def _usable(value: str, where: str = "text") -> str:
    """Text with something to read; lone surrogates (valid JSON escapes, not Unicode) become U+FFFD."""
    if is_blank(value):
        raise ValueError(f"{where} is empty")
    return value.encode("utf-8", "replace").decode("utf-8") if not value.isascii() else value


def _text_schema(limits: Limits) -> dict[str, Any]:
    """What a text must be, stated in the OpenAPI schema: at least one character that is neither space
    nor control, at most the server's limit (longer texts are answered 413, blank ones 422)."""
    return {"minLength": 1, "maxLength": limits.max_text_chars, "pattern": TEXT_PATTERN}


def request_models(limits: Limits) -> tuple[type[BaseModel], type[BaseModel]]:
    """The two request bodies with this server's limits in their schema."""
    text_schema = _text_schema(limits)

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: StrictStr = Field(json_schema_extra=text_schema)
        return_probabilities: StrictBool = True

        @field_validator("text")
        @classmethod
        def _check(cls, value: str) -> str:
            return _usable(value)

    class BatchRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        texts: list[StrictStr] = Field(
            min_length=1,
            json_schema_extra={"maxItems": limits.max_batch, "items": {"type": "string", **text_schema}},
        )
        return_probabilities: StrictBool = True

        @field_validator("texts")
        @classmethod
        def _each_usable(cls, value: list[str]) -> list[str]:
            return [_usable(text, f"texts[{i}]") for i, text in enumerate(value)]

    return PredictRequest, BatchRequest


class ErrorBody(BaseModel):
    """Every error answer: a short reason and the details (a message or validation errors)."""

    error: str
    detail: Any = None


class Overloaded(Exception):
    """The inference queue is full: answered 503 with Retry-After at once, never queued."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after


class Prediction(BaseModel):
    prediction: str
    confidence: float
    probabilities: dict[str, float] | None = None
    tier: str


class BatchResponse(BaseModel):
    predictions: list[Prediction]


# An explanation costs this many predictions' worth of queue (integrated gradients on a transformer
# runs the network fifty times, forwards and backwards).
EXPLAIN_COST = 20.0


def explain_request_model(
    limits: Limits, methods: tuple[str, ...], labels: tuple[str, ...]
) -> type[BaseModel]:
    """The /v1/explain body: one text, and optionally the method and the class to explain."""
    from typing import Literal

    text_schema = _text_schema(limits)
    Method = Literal[methods]  # type: ignore[valid-type]
    Label = Literal[labels]  # type: ignore[valid-type]

    class ExplainRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: StrictStr = Field(json_schema_extra=text_schema)
        method: Method | None = Field(default=None, description="default: the run's own method")
        target: Label | None = Field(default=None, description="default: the predicted class")
        return_probabilities: StrictBool = True

        @field_validator("text")
        @classmethod
        def _check(cls, value: str) -> str:
            return _usable(value)

    return ExplainRequest


class Token(BaseModel):
    text: str
    start: int
    end: int
    score: float


class Explanation(Prediction):
    """A prediction, the class explained, and one score per word of the review (character spans)."""

    target: str
    method: str
    tokens: list[Token]
    rest: float
