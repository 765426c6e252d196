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

import logging
import os
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from medsent._version import __version__
from medsent.core.errors import MedsentError
from medsent.core.labels import LABELS
from medsent.core.runs import RunFolder
from medsent.evaluation.explain import explain as explain_texts
from medsent.evaluation.explain import fitting_methods, pick_method
from medsent.inference.predict import Predictor
from medsent.interfaces.serve.batching import Gate, MicroBatcher, TooLarge, _error
from medsent.interfaces.serve.page import page
from medsent.interfaces.serve.schemas import (
    DEFAULT_INFER_BATCH,
    EXPLAIN_COST,
    GRACE_S,
    INFER_BATCH_ENV,
    MAX_BATCH_ENV,
    MAX_CHARS_ENV,
    MAX_QUEUE_ENV,
    RUN_ENV,
    THREADS_ENV,
    BatchResponse,
    ErrorBody,
    Explanation,
    Limits,
    Overloaded,
    Prediction,
    Token,
    explain_request_model,
    request_models,
)
from medsent.models.registry import run_kind

log = logging.getLogger(__name__)


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
        for method in fitting_methods(predictor.kind.family):  # attribution libraries load here too
            explain_texts(predictor, ["warm-up review"], method)
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
    # The schema offers the methods that explain this run's kind, read off run.json without loading.
    family = run_kind(RunFolder(Path(run_dir)).kind).family
    ExplainRequest = explain_request_model(limits, tuple(fitting_methods(family)), tuple(LABELS))
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

    async def explain(req: Any) -> Explanation:
        check_length([req.text])
        predictor = state["predictor"]
        try:
            method = pick_method(predictor, req.method).name
        except MedsentError as exc:
            return _error(422, "invalid request", str(exc))  # type: ignore[return-value]

        def job(texts: list[str]) -> list[dict[str, Any]]:
            return explain_texts(predictor, texts, method, req.target)

        key = ("explain", method, req.target)
        row = (await state["batcher"].submit(key, job, [req.text], cost=EXPLAIN_COST))[0]
        shaped = _shape(row, req.return_probabilities).model_dump()
        tokens = [Token(**tok) for tok in row["tokens"]]
        return Explanation(**shaped, target=row["target"], method=method, tokens=tokens, rest=row["rest"])

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home() -> HTMLResponse:
        return HTMLResponse(page(str(state["info"]["run"]), limits.max_text_chars, limits.max_batch))

    # The request models carry this server's limits, so they are made here; FastAPI reads the
    # parameter annotation, which must be the class itself rather than its name.
    explain.__annotations__.update(req=ExplainRequest)
    app.post("/v1/explain", response_model=Explanation, response_model_exclude_none=True, responses=errors)(
        explain
    )
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
        "medsent.interfaces.serve.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=GRACE_S,
    )


def _shape(row: dict[str, Any], with_proba: bool) -> Prediction:
    return Prediction(
        prediction=row["prediction"],
        confidence=round(row["confidence"], 6),
        probabilities={k: round(v, 6) for k, v in row["probabilities"].items()} if with_proba else None,
        tier=row["tier"],
    )
