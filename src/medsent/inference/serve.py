"""`medsent serve`: the study's deployment API as a FastAPI app over one run folder.

The model is loaded once at start-up. Requests are micro-batched: whatever texts are waiting when the
model becomes free go through it together (up to ``MEDSENT_INFER_BATCH`` rows), in one inference
thread, so 32 concurrent single-review requests cost about one batched forward pass instead of 32
threads fighting over two cores; an idle server adds no wait. The event loop never runs the model,
so health checks and request parsing stay responsive during a slow prediction.
Limits are checked before any model work: too long a text or too many texts is a 413, malformed
input a 422, always with a JSON body ``{"error": ..., "detail": ...}``. Lightning is never imported.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from medsent._version import __version__
from medsent.data.clean import TEXT_PATTERN, is_blank
from medsent.inference.predict import Predictor

log = logging.getLogger(__name__)

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


class MicroBatcher:
    """Adaptive batching: the first waiting request starts a batch, everything queued behind it joins.

    The queue is bounded by ``max_queue_rows`` texts (waiting plus in the model): a request that
    would go over is refused at once (``Overloaded``: 503 with Retry-After), so the requests that
    are accepted wait at most about max_queue_rows rows of model time.
    """

    def __init__(self, predictor: Predictor, max_rows: int = 64, max_queue_rows: int = 256) -> None:
        self.predictor = predictor
        self.max_rows = max_rows
        self.max_queue_rows = max_queue_rows
        self.queue: asyncio.Queue[tuple[list[str], asyncio.Future[list[dict[str, Any]]]]] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="medsent-infer")
        self.task: asyncio.Task[None] | None = None
        self.batches = 0
        self.rows = 0
        self.pending = 0  # texts accepted and not yet answered
        self.shed = 0  # requests refused with 503
        self.seconds_per_row = 0.01  # running estimate, for Retry-After
        self.latencies: collections.deque[float] = collections.deque(maxlen=100_000)  # accepted, s

    def retry_after(self) -> int:
        return max(1, int(self.pending * self.seconds_per_row + 0.999))

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, drain_seconds: float = 30.0) -> None:
        """Answer what was accepted (up to ``drain_seconds``), then stop the inference thread."""
        deadline = time.monotonic() + drain_seconds
        while self.pending and time.monotonic() < deadline and self.task is not None and not self.task.done():
            await asyncio.sleep(0.01)
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        if self.pending + len(texts) > self.max_queue_rows and self.pending > 0:
            self.shed += 1
            raise Overloaded(self.retry_after())
        self.pending += len(texts)
        future: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        started = time.perf_counter()
        try:
            await self.queue.put((texts, future))
            out = await future
            self.latencies.append(time.perf_counter() - started)
            return out
        finally:
            self.pending -= len(texts)

    def latency_ms(self) -> dict[str, float]:
        """Queue-plus-model time of the accepted requests (the last 100K): p50, p90, p99, max."""
        if not self.latencies:
            return {}
        import numpy as np

        ms = np.asarray(self.latencies) * 1000
        return {f"p{q}": float(np.percentile(ms, q)) for q in (50, 90, 99)} | {"max": float(ms.max())}

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            rows = len(items[0][0])
            while rows < self.max_rows and not self.queue.empty():
                item = self.queue.get_nowait()
                items.append(item)
                rows += len(item[0])
            items = [(texts, fut) for texts, fut in items if not fut.cancelled()]  # clients that left
            flat = [t for texts, _ in items for t in texts]
            if not flat:
                continue
            started = time.perf_counter()
            try:
                out = await loop.run_in_executor(self.executor, self.predictor.predict, flat)
                took = (time.perf_counter() - started) / len(flat)
                self.seconds_per_row = 0.8 * self.seconds_per_row + 0.2 * took
            except Exception as exc:  # handed to each waiting request, which answers 500
                for _, fut in items:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self.batches += 1
            self.rows += len(flat)
            start = 0
            for texts, fut in items:
                if not fut.done():
                    fut.set_result(out[start : start + len(texts)])
                start += len(texts)


class Gate:
    """Pure-ASGI front door, before any body is read or parsed: too large a body is a 413, and a
    full queue a 503 with Retry-After. Refusing must cost almost nothing, or a flood of refused
    requests starves the accepted ones of the interpreter (measured: 512 clients against a
    128-text queue got 85 accepted req/s at p99 3.2 s when the refusal came after parsing)."""

    def __init__(self, app: Any, limits: Limits, state: dict[str, Any]) -> None:
        self.app, self.limits, self.state = app, limits, state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            length = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
            if length.isdigit() and int(length) > self.limits.max_body_bytes:
                detail = f"body of {int(length)} bytes exceeds {self.limits.max_body_bytes}"
                await _error(413, "payload too large", detail)(scope, receive, send)
                return
            batcher = self.state.get("batcher")
            if (
                batcher is not None
                and scope["method"] == "POST"
                and scope["path"].startswith("/v1/predict")
                and batcher.pending >= batcher.max_queue_rows
            ):
                batcher.shed += 1
                response = _error(503, "overloaded", "the inference queue is full; retry later")
                response.headers["Retry-After"] = str(batcher.retry_after())
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class TooLarge(Exception):
    def __init__(self, detail: str) -> None:
        self.detail = detail


def _error(status: int, error: str, detail: Any) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": error, "detail": detail})


def _shape(row: dict[str, Any], with_proba: bool) -> Prediction:
    return Prediction(
        prediction=row["prediction"],
        confidence=round(row["confidence"], 6),
        probabilities={k: round(v, 6) for k, v in row["probabilities"].items()} if with_proba else None,
        tier=row["tier"],
    )


def model_info(predictor: Predictor) -> dict[str, Any]:
    """What /v1/model reports: kind, labels, the run's stored metrics and how predictions are made."""
    metrics = predictor.run.metrics
    headline = {
        role: {k: metrics[role].get(k) for k in ("n", "macro_f1", "accuracy", "kappa", "ece")}
        for role in ("val", "test")
        if isinstance(metrics.get(role), dict)
    }
    return {
        "model": predictor.model_name,
        "family": predictor.meta.get("family"),
        "labels": predictor.labels,
        "run": predictor.run_dir.name,
        "created": predictor.meta.get("created"),
        "medsent_version": __version__,
        "run_medsent_version": predictor.meta.get("medsent_version"),
        "backend": predictor.backend,
        "calibrated": predictor.temperature is not None,
        "temperature": predictor.temperature,
        "tiers": predictor.config.tiers.model_dump(),
        "metrics": headline,
        "params": metrics.get("params_total"),
    }


def create_app(
    run_dir: str | Path, limits: Limits | None = None, predictor: Predictor | None = None
) -> FastAPI:
    """The app for one run; the model loads in the lifespan hook (unless given), before the first request."""
    limits = limits or Limits.from_env()
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        threads = os.environ.get(THREADS_ENV)
        if threads and threads.isdigit():
            import torch

            torch.set_num_threads(int(threads))
        nonlocal predictor
        predictor = predictor or Predictor(run_dir)
        # First-call allocations before traffic, for single reviews and for batches (a run routed
        # between onnxruntime and PyTorch loads its torch weights here, not on a user's request).
        predictor.predict(["warm-up review"])
        predictor.predict(["warm-up review"] * 32)
        batcher = MicroBatcher(
            predictor,
            int(os.environ.get(INFER_BATCH_ENV, DEFAULT_INFER_BATCH)),
            max(limits.max_queue, limits.max_batch),  # one full batch request always fits
        )
        batcher.start()
        state.update(predictor=predictor, batcher=batcher, info=model_info(predictor))
        log.info("loaded %s (%s) in %.2f s", run_dir, predictor.backend, time.perf_counter() - start)
        yield
        await batcher.stop()
        state.clear()

    app = FastAPI(title="medsent", version=__version__, lifespan=lifespan)

    app.add_middleware(Gate, limits=limits, state=state)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))} for e in exc.errors()
        ]
        return _error(422, "invalid request", details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # a body that is not JSON text (bad bytes): malformed input, like the rest
            return _error(422, "invalid request", str(exc.detail))
        response = _error(exc.status_code, str(exc.detail).lower(), str(exc.detail))
        response.headers.update(exc.headers or {})  # 405 keeps its Allow header
        return response

    @app.exception_handler(Overloaded)
    async def overloaded(_: Request, exc: Overloaded) -> JSONResponse:
        response = _error(503, "overloaded", f"the inference queue is full; retry in {exc.retry_after} s")
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(TooLarge)
    async def too_large(_: Request, exc: TooLarge) -> JSONResponse:
        return _error(413, "payload too large", exc.detail)

    @app.exception_handler(Exception)
    async def crashed(_: Request, exc: Exception) -> JSONResponse:
        log.exception("prediction failed")
        return _error(500, "internal error", type(exc).__name__)

    def check_length(texts: list[str]) -> None:
        for i, text in enumerate(texts):
            if len(text) > limits.max_text_chars:
                raise TooLarge(f"text {i} has {len(text)} characters; the limit is {limits.max_text_chars}")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {
            "status": "ok" if "predictor" in state else "loading",
            "model": state.get("info", {}).get("model"),
        }

    @app.get("/v1/stats")
    def stats() -> dict[str, Any]:
        """How well requests are being batched (rows per forward pass)."""
        batcher = state["batcher"]
        mean = batcher.rows / batcher.batches if batcher.batches else 0.0
        out: dict[str, Any] = {
            "batches": batcher.batches,
            "rows": batcher.rows,
            "mean_batch_rows": mean,
            "queued_rows": batcher.pending,
            "max_queue_rows": batcher.max_queue_rows,
            "shed_requests": batcher.shed,
            "accepted_latency_ms": batcher.latency_ms(),
        }
        routing = getattr(state["predictor"].model, "routing_stats", None)
        if routing is not None:  # a cascade: the share of reviews the slow model answered
            out["routing"] = routing()
        return out

    @app.get("/v1/model")
    def model() -> dict[str, Any]:
        return dict(state["info"])

    PredictRequest, BatchRequest = request_models(limits)
    errors: dict[int | str, dict[str, Any]] = {
        413: {"model": ErrorBody, "description": "a text or the batch is over the limits in the schema"},
        422: {"model": ErrorBody, "description": "malformed request: not JSON, wrong fields, blank text"},
        503: {
            "model": ErrorBody,
            "description": "the inference queue is full; nothing was queued",
            "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
        },
    }

    async def predict(req: Any) -> Prediction:
        check_length([req.text])
        rows = await state["batcher"].predict([req.text])
        return _shape(rows[0], req.return_probabilities)

    async def predict_batch(req: Any) -> BatchResponse:
        if len(req.texts) > limits.max_batch:
            raise TooLarge(f"{len(req.texts)} texts; the limit is {limits.max_batch} per request")
        check_length(req.texts)
        rows = await state["batcher"].predict(req.texts)
        return BatchResponse(predictions=[_shape(r, req.return_probabilities) for r in rows])

    # The request models carry this server's limits, so they are made here; FastAPI reads the
    # parameter annotation, which must be the class itself rather than its name.
    predict.__annotations__.update(req=PredictRequest)
    predict_batch.__annotations__.update(req=BatchRequest)
    app.post("/v1/predict", response_model=Prediction, response_model_exclude_none=True, responses=errors)(
        predict
    )
    app.post(
        "/v1/predict/batch", response_model=BatchResponse, response_model_exclude_none=True, responses=errors
    )(predict_batch)
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers (``--workers N`` starts processes that import this)."""
    run_dir = os.environ.get(RUN_ENV)
    if not run_dir:
        raise RuntimeError(f"{RUN_ENV} is not set")
    return create_app(run_dir)


def serve(run_dir: Path, host: str, port: int, workers: int, limits: Limits, threads: int | None) -> None:
    import uvicorn

    predictor = Predictor(run_dir)  # a bad run folder fails here, as one line, before uvicorn starts
    os.environ[RUN_ENV] = str(run_dir.resolve())
    os.environ[MAX_CHARS_ENV] = str(limits.max_text_chars)
    os.environ[MAX_BATCH_ENV] = str(limits.max_batch)
    os.environ[MAX_QUEUE_ENV] = str(limits.max_queue)
    if threads:
        os.environ[THREADS_ENV] = str(threads)
    log.warning(
        "medsent serving %s (%s, %s) on http://%s:%d with %d worker(s)",
        run_dir,
        model_info(predictor)["model"],
        predictor.backend,
        host,
        port,
        workers,
    )
    if workers == 1:
        app = create_app(run_dir, limits, predictor)
        # SIGTERM: stop accepting, answer the requests in flight (up to the grace period), then exit.
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=GRACE_S,
        )
        return
    del predictor  # each worker process loads its own copy
    uvicorn.run(
        "medsent.inference.serve:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=GRACE_S,
    )
