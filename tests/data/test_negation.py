from medsent.data.negation import negation_tag, tokenize


def test_scope_runs_from_cue_to_clause_boundary() -> None:
    assert negation_tag("No side effects, and it works.") == "no NEG_side NEG_effects and it works"


def test_contractions_and_contrast_words_end_or_start_scope() -> None:
    assert negation_tag("I don't feel better but sleep well") == "i don't NEG_feel NEG_better but sleep well"
    assert negation_tag("Never again!") == "never NEG_again"


def test_medical_cue_denied() -> None:
    assert negation_tag("Patient denied nausea; mild headache") == "patient denied NEG_nausea mild headache"


def test_tokens_keep_in_word_apostrophes() -> None:
    assert tokenize("It's 5mg, isn't it?") == ["it's", "5mg", ",", "isn't", "it", "?"]
