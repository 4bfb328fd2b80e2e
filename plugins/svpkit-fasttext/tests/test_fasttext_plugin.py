"""svpkit-fasttext: the Learner protocol on real text, the paper's defaults, option handling."""

from __future__ import annotations

import numpy as np
import pytest
import svpkit_fasttext
import torch

from svpkit.data.base import Dataset, Split
from svpkit.errors import ConfigError
from svpkit.learners import make_learner
from svpkit.plugins import get_plugins
from svpkit.protocols import LearnerOptions

POSITIVE = ["a wonderful , moving film", "great acting and a great script", "i loved it", "wonderful and great fun"]
NEGATIVE = ["a dull , boring mess", "boring and far too long", "i hated it", "dull , dull , dull"]


def _data(num_classes: int = 2) -> Dataset:
    texts = POSITIVE * 5 + NEGATIVE * 5
    y = torch.tensor([0] * 20 + [1] * 20)
    test = Split(["great , wonderful film", "boring dull mess"], torch.tensor([0, 1]))
    return Dataset("tiny_sentiment", Split(texts, y), test, num_classes, "text", (1,))


def _learner(data: Dataset, **extra: object) -> svpkit_fasttext.FastTextLearner:
    spec = get_plugins().models.get("fasttext")
    return make_learner(spec, data, LearnerOptions(seed=0, epochs=20, lr=0.5, extra={"bucket": 10_000, **extra}))  # type: ignore[return-value]


def test_registered_with_the_papers_defaults() -> None:
    entry = get_plugins().models.entry("fasttext")
    assert entry.distribution == "svpkit-fasttext"
    assert entry.spec.modalities == ("text",) and entry.spec.build is None
    d = svpkit_fasttext.DEFAULTS
    assert (d["word_ngrams"], d["dim"], d["epochs"], d["lr"], d["min_count"]) == (2, 10, 5, 0.05, 1)
    assert entry.spec.num_parameters() == 10_000_000 * 10 + 10 * 2


def test_learner_fits_scores_and_embeds() -> None:
    data = _data()
    learner = _learner(data)
    assert learner.device == torch.device("cpu")
    learner.fit(np.arange(40))
    probs = learner.predict_proba(np.array([0, 1, 25]))
    assert probs.dtype == torch.float32 and probs.shape == (3, 2)
    torch.testing.assert_close(probs.sum(1), torch.ones(3))
    assert probs.argmax(1).tolist() == [0, 0, 1]
    assert learner.error("test") == 0.0
    emb = learner.embed(np.arange(4))
    assert emb.shape == (4, 10) and torch.isfinite(emb).all()
    # Same seed, one thread: the same model.
    again = _learner(data)
    again.fit(np.arange(40))
    torch.testing.assert_close(again.predict_proba(np.array([0, 1, 25])), probs)


def test_classes_missing_from_the_labeled_set_get_zero_probability() -> None:
    data = _data(num_classes=3)
    learner = _learner(data)
    learner.fit(np.arange(40))
    probs = learner.predict_proba()
    assert probs.shape == (40, 3) and (probs[:, 2] == 0).all()
    torch.testing.assert_close(probs.sum(1), torch.ones(40))


def test_options_and_limits() -> None:
    data = _data()
    with pytest.raises(ConfigError, match="model 'fasttext' has no option 'window'; it takes bucket, dim, lr"):
        _learner(data, window=3)
    with pytest.raises(ConfigError, match="'dim' of model 'fasttext' must be an integer, got 'ten'"):
        _learner(data, dim="ten")
    with pytest.raises(ConfigError, match="set .epochs. with --proxy/target-epochs"):
        _learner(data, epochs=3)
    learner = _learner(data, dim=4)
    with pytest.raises(ConfigError, match="forgetting events"):
        learner.fit(np.arange(40), observers=[object()])  # type: ignore[list-item]
    learner.fit(np.arange(40))
    assert learner.embed(np.array([0])).shape == (1, 4)
    images = Dataset("img", Split(torch.zeros(2, 4, 4, 3, dtype=torch.uint8), torch.tensor([0, 1])),
                     Split(torch.zeros(1, 4, 4, 3, dtype=torch.uint8), torch.tensor([0])), 2, "image", (4, 4, 3))  # fmt: skip
    with pytest.raises(ConfigError, match="takes text inputs"):
        make_learner(get_plugins().models.get("fasttext"), images, LearnerOptions())


def test_normalize_matches_the_reference_pipeline() -> None:
    assert svpkit_fasttext.normalize('It\'s "GREAT"!<br />Really, (yes): no;') == "it ' s great ! really , ( yes ) no"


def _regex_normalize(text: str) -> str:
    """The reference's sed steps one by one (the plugin's first implementation)."""
    import re

    text = text.lower()
    for pattern, repl in [
        (r"<br\s*/?>", " "),
        (r"'", " ' "),
        (r'"', ""),
        (r"([.,()!?])", r" \1 "),
        (r"[;:]", " "),
        (r"\s+", " "),
    ]:
        text = re.sub(pattern, repl, text)
    return text.strip()


def test_one_pass_normalize_equals_the_step_by_step_pipeline() -> None:
    rng = np.random.default_rng(0)
    alphabet = list("aZ '\".,()!?;:<br/>\t\n\u00a0\u2003\x0b\x1cÉß-") + ["<br>", "<BR />", "<br  />", "<b"]
    texts = ["".join(rng.choice(alphabet, size=rng.integers(0, 40))) for _ in range(3000)]
    assert [svpkit_fasttext.normalize(t) for t in texts] == [_regex_normalize(t) for t in texts]


def test_scoring_in_chunks_equals_scoring_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data()
    learner = _learner(data)
    learner.fit(np.arange(0, 40, 3))
    whole, emb = learner.predict_proba(), learner.embed(np.arange(40)[::-1])
    monkeypatch.setattr(svpkit_fasttext, "CHUNK", 7)
    torch.testing.assert_close(learner.predict_proba(), whole, rtol=0, atol=0)
    torch.testing.assert_close(learner.embed(np.arange(40)[::-1]), emb, rtol=0, atol=0)
    again = _learner(data)
    again.fit(np.arange(0, 40, 3))  # the training file written 7 texts at a time: the same model
    torch.testing.assert_close(again.predict_proba(), whole, rtol=0, atol=0)


def test_rows_scoring_only_some_labels_fill_their_columns() -> None:
    learner = _learner(_data(num_classes=3))
    learner.fit(np.arange(40))

    class Ragged:  # a prediction that dropped a label (fastText's threshold) in one row
        def multilinePredict(self, texts, k, threshold, errors):  # type: ignore[no-untyped-def]  # noqa: N802
            return [["__label__1", "__label__0"], ["__label__0"]], [[0.75, 0.25], [1.0]]

    learner.model.f = Ragged()
    probs = learner.predict_proba(np.array([0, 1]))
    torch.testing.assert_close(probs, torch.tensor([[0.25, 0.75, 0.0], [1.0, 0.0, 0.0]]))
