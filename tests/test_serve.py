"""The REST service: the study's response format, limits as 413/422 JSON, and a real server process."""

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from medsent.serve import Limits, create_app


@pytest.fixture(scope="module")
def client(svm_run: Path):  # type: ignore[no-untyped-def]
    with TestClient(create_app(svm_run, Limits(max_text_chars=500, max_batch=4))) as c:
        yield c


def test_predict_matches_the_study_format(client: TestClient) -> None:
    r = client.post("/v1/predict", json={"text": "This drug changed my life, no side effects."})
    body = r.json()
    assert r.status_code == 200 and set(body) == {"prediction", "confidence", "probabilities", "tier"}
    assert body["prediction"] in body["probabilities"] and body["tier"] in ("auto", "review", "manual")
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert body["confidence"] == max(body["probabilities"].values())
    r = client.post("/v1/predict", json={"text": "Terrible.", "return_probabilities": False})
    assert r.status_code == 200 and "probabilities" not in r.json()


def test_batch_health_and_model_info(client: TestClient) -> None:
    texts = ["Great, it works.", "Awful headaches.", "It is fine I guess."]
    r = client.post("/v1/predict/batch", json={"texts": texts})
    single = [client.post("/v1/predict", json={"text": t}).json() for t in texts]
    assert r.status_code == 200 and r.json()["predictions"] == single
    assert client.get("/health").json() == {"status": "ok", "model": "svm"}
    info = client.get("/v1/model").json()
    assert info["model"] == "svm" and info["labels"] == ["Negative", "Neutral", "Positive"]
    assert 0 < info["metrics"]["val"]["macro_f1"] <= 1 and info["medsent_version"]
    stats = client.get("/v1/stats").json()
    assert stats["rows"] >= 3 + 3 and stats["batches"] >= 1


@pytest.mark.parametrize(
    ("payload", "status", "fragment"),
    [
        ({"text": "x" * 501}, 413, "limit is 500"),
        ({"text": ""}, 422, "text is empty"),
        ({"text": "   "}, 422, "text is empty"),
        ({"text": 42}, 422, "valid string"),
        ({"text": None}, 422, "valid string"),
        ({}, 422, "Field required"),
        ({"text": "ok", "extra": 1}, 422, "Extra inputs"),
    ],
)
def test_single_limits(client: TestClient, payload: dict, status: int, fragment: str) -> None:
    r = client.post("/v1/predict", json=payload)
    assert r.status_code == status and r.json()["error"] and fragment in json.dumps(r.json())


def test_batch_limits_and_broken_bodies(client: TestClient) -> None:
    r = client.post("/v1/predict/batch", json={"texts": ["a"] * 5})
    assert r.status_code == 413 and "limit is 4" in r.json()["detail"]
    assert client.post("/v1/predict/batch", json={"texts": []}).status_code == 422
    assert client.post("/v1/predict/batch", json={"texts": ["ok", 3]}).status_code == 422
    assert client.post("/v1/predict/batch", json={"texts": ["ok", " "]}).status_code == 422
    r = client.post("/v1/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = client.post("/v1/predict", content=b"\xff\xfe\x00", headers={"content-type": "application/json"})
    assert r.status_code == 422
    huge = b'{"text": "' + b"a" * 3_000_000 + b'"}'
    r = client.post("/v1/predict", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "payload too large"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_real_server_process_binds_localhost_without_lightning(svm_run: Path, tmp_path: Path) -> None:
    port = _free_port()
    code = (
        "import sys, atexit\n"
        "atexit.register(lambda: print('LIGHTNING', 'lightning' in sys.modules, file=sys.stderr, flush=True))\n"
        "from medsent.cli import main\n"
        f"main(['serve', {str(svm_run)!r}, '--port', '{port}'])\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()["status"] == "ok":
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not come up"
            time.sleep(0.3)
        r = httpx.post(f"http://127.0.0.1:{port}/v1/predict", json={"text": "Worked well for my migraines."})
        assert r.status_code == 200 and r.json()["prediction"] in ("Negative", "Neutral", "Positive")
    finally:
        proc.send_signal(signal.SIGINT)  # graceful stop: the exit hook reports the imported modules
        _, err = proc.communicate(timeout=30)
    assert f"127.0.0.1:{port}" in err and "LIGHTNING False" in err


def test_serve_refuses_a_bad_run_folder_in_one_line(cli, tmp_path: Path) -> None:
    assert cli("serve", tmp_path / "nope").one_line_error("run folder not found")


def test_concurrent_requests_share_one_forward_pass(svm_run: Path) -> None:
    import asyncio

    from medsent.predict import Predictor
    from medsent.serve import MicroBatcher

    predictor = Predictor(svm_run)
    texts = [f"Review {i}: {'it worked' if i % 2 else 'awful nausea'} for my back pain." for i in range(10)]

    async def scenario() -> tuple[list[list[dict]], MicroBatcher]:
        batcher = MicroBatcher(predictor, max_rows=64)
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.predict([t]) for t in texts)), batcher
        finally:
            await batcher.stop()

    results, batcher = asyncio.run(scenario())
    assert [r[0] for r in results] == predictor.predict(texts)  # each caller gets its own row back
    assert batcher.rows == 10 and batcher.batches < 10
