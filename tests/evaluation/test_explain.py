"""Explanations: each method's defining property on real runs, the reader's words, and bad input."""

import json
from pathlib import Path

import numpy as np
import pytest

from medsent.evaluation.explain import explain, fitting_methods
from medsent.evaluation.explain.faithfulness import faithfulness
from medsent.evaluation.explain.methods import IntegratedGradients, occlude
from medsent.evaluation.explain.words import reader_spans, to_original, without
from medsent.inference.predict import Predictor

TEXTS = [
    "This drug didn't work at all, and the side effects were awful!",
    "Works great. No side effects &amp; I’m sleeping again 😊",
    "ok i guess",
    "Nausea,headache... but my BP finally came down (140/90 -> 120/80).",
]


def test_reader_tokens_cover_every_visible_character_and_map_back_through_cleaning() -> None:
    text = "Didn't  help;  my  head hurt"
    spans = reader_spans(text)
    assert [text[s:e] for s, e in spans] == ["Didn't", "help", ";", "my", "head", "hurt"]
    cleaned = "Didn't help; my head hurt"  # cleaning squeezed the whitespace
    moved = to_original(text, cleaned, reader_spans(cleaned))
    assert [text[s:e] for s, e in moved] == ["Didn't", "help", ";", "my", "head", "hurt"]
    assert without(text, spans, [False, True, False, False, False, False]) == "Didn't ; my head hurt"


def test_linear_scores_add_up_to_the_svms_decision_value(svm_run: Path) -> None:
    """Every n-gram's share lands on words: word scores plus the intercept are the decision value,
    for the predicted class and for each other class."""
    predictor = Predictor(svm_run)
    for target in (None, "Negative", "Neutral", "Positive"):
        for record in explain(predictor, TEXTS, "linear", target):
            total = sum(t["score"] for t in record["tokens"]) + record["rest"]
            assert total == pytest.approx(record["decision_value"], abs=1e-6)
            assert target is None or record["target"] == target
    record = explain(predictor, ["Works great, no side effects"], "linear")[0]
    assert record["prediction"] == record["target"]
    assert [t["text"] for t in record["tokens"]] == ["Works", "great", ",", "no", "side", "effects"]


@pytest.mark.parametrize("run", ["textcnn_run", "transformer_run"])
def test_integrated_gradients_are_complete(run: str, request: pytest.FixtureRequest) -> None:
    """Attributions add up to f(x) - f(baseline), within Captum's convergence delta."""
    predictor = Predictor(request.getfixturevalue(run))
    assert set(fitting_methods(predictor.kind.family)) == {"integrated_gradients", "occlusion"}
    texts = TEXTS if run == "textcnn_run" else TEXTS[:2]  # MiniLM: two reviews show it, at half the time
    for record in explain(predictor, texts, "integrated_gradients"):
        total = sum(t["score"] for t in record["tokens"]) + record["rest"]
        assert total == pytest.approx(record["f_input"] - record["f_baseline"], abs=record["delta"] + 1e-5)
        assert record["delta"] < 0.05
        change = abs(record["f_input"] - record["f_baseline"])
        converged = record["delta"] <= max(IntegratedGradients.tolerance * change, 1e-4)
        assert converged or record["steps"] == IntegratedGradients.most_steps
        assert any(t["score"] != 0 for t in record["tokens"])


def test_integrated_gradients_take_more_steps_only_while_the_error_is_too_large(textcnn_run: Path) -> None:
    predictor = Predictor(textcnn_run)
    text = predictor.clean([TEXTS[0]])[0]
    spans, label = reader_spans(text), int(predictor.decide(predictor.predict_proba([text]))[0])
    lax, strict = IntegratedGradients(), IntegratedGradients()
    lax.tolerance, strict.tolerance = 10.0, 0.0
    first = lax.attribute(predictor, text, spans, label)
    most = strict.attribute(predictor, text, spans, label)
    assert first.extra["steps"] == IntegratedGradients.first_steps
    assert most.extra["steps"] == IntegratedGradients.most_steps
    assert most.delta is not None and most.delta < 0.05  # float32 arithmetic, not a monotone error, past 16


def test_every_run_kind_has_a_default_method_that_fits_it() -> None:
    from medsent.evaluation.explain import DEFAULTS
    from medsent.evaluation.explain.methods import METHODS
    from medsent.models.registry import RUN_KINDS

    for spec in RUN_KINDS.values():
        default = DEFAULTS[spec.family]
        assert METHODS[default].fits(spec.family) and fitting_methods(spec.family)[0] == default


def test_occlusion_finds_the_one_word_that_decides() -> None:
    text = "The pills were awful and expensive"
    spans = reader_spans(text)

    def toy(texts: list[str]) -> np.ndarray:  # a model that only reads one word
        return np.array([0.9 if "awful" in t else 0.2 for t in texts])

    scores = occlude(toy, text, spans)
    assert int(np.argmax(scores)) == 3 and scores[3] == pytest.approx(0.7)
    assert np.count_nonzero(scores) == 1


def test_occlusion_explains_any_run_and_scores_the_drop(svm_run: Path) -> None:
    predictor = Predictor(svm_run)
    record = explain(predictor, [TEXTS[0]], "occlusion")[0]
    label = predictor.labels.index(record["target"])
    spans = reader_spans(TEXTS[0])
    k = int(np.argmax([t["score"] for t in record["tokens"]]))
    drop = [i == k for i in range(len(spans))]
    less = predictor.predict_proba([without(TEXTS[0], spans, drop)])[0, label]
    assert record["tokens"][k]["score"] == pytest.approx(record["confidence"] - less, abs=1e-9)


def test_faithfulness_ranks_the_svms_words_above_random_ones(svm_run: Path, val_csv: Path) -> None:
    import pandas as pd

    texts = pd.read_csv(val_csv)["review"].astype(str).tolist()[:40]
    report = faithfulness(Predictor(svm_run), texts, "linear", seed=3)
    at20 = next(r for r in report["by_share"] if r["share"] == 0.2)
    assert report["reviews"] > 30
    assert at20["comprehensiveness_top"] > at20["comprehensiveness_random"]
    assert at20["sufficiency_top"] < at20["sufficiency_random"]
    again = faithfulness(Predictor(svm_run), texts, "linear", seed=3)
    assert again["by_share"] == report["by_share"]  # the random words are seeded


def test_explain_command_writes_records_and_refuses_bad_input(svm_run: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "in.csv"
    src.write_text('review\n"Great, no side effects"\n"   "\n"Awful headaches"\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert cli("explain", svm_run, "--input", src, "--output", out).code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["row"] for r in rows] == [0, 1, 2] and rows[1]["tier"] == "manual" and rows[1]["tokens"] == []
    assert rows[0]["method"] == "linear" and rows[2]["tokens"][0]["text"] == "Awful"
    for argv, message in (
        (["--text", "fine", "--method", "shap"], "unknown explanation method 'shap'"),
        (["--text", "fine", "--method", "integrated_gradients"], "does not fit a svm run"),
        (["--text", "  "], "--text is empty"),
        (["--text", "fine", "--target", "Mixed"], "unknown target class 'Mixed'"),
    ):
        result = cli("explain", svm_run, *argv)
        assert result.code == 2 and message in result.err and len(result.err.strip().splitlines()) == 1
    gone = tmp_path / "never.jsonl"
    assert cli("explain", svm_run, "--input", src, "--output", gone, "--method", "shap").code == 2
    assert not gone.exists()


def test_the_python_api_explains_like_the_command(svm_run: Path) -> None:
    import medsent

    model = medsent.load(svm_run)
    records = model.explain(["Great, no side effects", ""], method="occlusion")
    assert records[0]["method"] == "occlusion" and records[0]["tokens"]
    assert records[1]["prediction"] is None and records[1]["tokens"] == []
