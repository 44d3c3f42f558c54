"""Text enhancement without a network: the offline lexicon, CLIP's context, the enhancer factory, the JSONL cache and
weighted prompt sets (the LLM client has its own tests against a local server, test_llm_client.py)."""

import json
import math

import pytest
import torch

from anyskill.text import (
    LEXICON,
    EnhancementFallbackWarning,
    LLMEnhancer,
    NoEnhancer,
    OfflineEnhancer,
    PromptSet,
    PromptSetError,
    enhancer_provenance,
    make_enhancer,
)
from anyskill.text.cache import EnhancementCache, cache_key, default_cache_path
from anyskill.text.clip_context import CONTEXT_LENGTH, clip_token_count, fit_clip_context
from anyskill.text.lexicon import LexiconEntry

PAPER_FIG6 = {"wave hi": "raised arm bent at the elbow", "Waltz dance": "left foot step backward, right hand extends",
              "kick": "left leg forward, right leg retreats"}
AUTHORS_GENERAL = ("yoga", "raise two arms", "stand up", "move forward", "put up one hand",
                   "raise one leg and kick it forward", "dance with arms", "run")


@pytest.fixture(scope="module")
def offline():
    return OfflineEnhancer()


def test_the_paper_pairs_are_reproduced_verbatim(offline):
    for prompt, enhanced in PAPER_FIG6.items():
        e = offline.enhance(prompt)
        assert (e.text, e.enhancer, e.model, e.changed) == (enhanced, "offline", "offline", True)


def test_lexicon_matches_whole_words_inflections_and_the_longest_trigger(offline):
    assert offline.enhance("The man is WAVING!").text == PAPER_FIG6["wave hi"]
    assert offline.enhance("he kicks").text == PAPER_FIG6["kick"]
    assert offline.enhance("raise both arms").note == "lexicon: raise both arms"  # not "raise one arm" or "raise"
    assert offline.enhance("raise the left hand").text.startswith("left arm raised")
    assert offline.enhance("this is it").note.startswith("no lexicon entry")  # "hi" inside "this" does not count
    both = offline.enhance("kick, then wave hi")
    assert both.text == f"{PAPER_FIG6['kick']}, {PAPER_FIG6['wave hi']}"  # order of appearance
    many = offline.enhance("run, jump, kick, punch and bow")
    assert many.note == "lexicon: run, jump, kick"  # at most MAX_ACTIVITIES


def test_unknown_prompts_are_kept_and_empty_ones_refused(offline):
    e = offline.enhance("  moonwalk   backwards ")
    assert e.text == "moonwalk backwards" and not e.changed and "no lexicon entry" in e.note
    with pytest.raises(ValueError, match="empty prompt"):
        offline.enhance("   ")


def test_the_lexicon_covers_the_authors_prompts_and_fits_clip(offline):
    assert len(LEXICON) >= 40
    for prompt in AUTHORS_GENERAL:
        assert offline.enhance(prompt).changed, prompt
    for entry in LEXICON:
        assert len(entry.description.split()) <= 16 and clip_token_count(entry.description) <= CONTEXT_LENGTH


def test_lexicon_triggers_are_checked(offline):
    with pytest.raises(ValueError, match="in both"):
        OfflineEnhancer((LexiconEntry("a", ("wave",), "x"), LexiconEntry("b", ("wave",), "y")))
    with pytest.raises(ValueError, match="lower-case words"):
        OfflineEnhancer((LexiconEntry("a", ("Wave!",), "x"),))


def test_fit_clip_context_cuts_at_clauses_then_words():
    short = "raised arm bent at the elbow"
    assert fit_clip_context(short) == short
    clauses = ", ".join(f"clause number {i} about the left arm" for i in range(30))
    cut = fit_clip_context(clauses)
    assert clip_token_count(cut) <= CONTEXT_LENGTH and clauses.startswith(cut) and cut.endswith("left arm")
    words = " ".join(["elbow"] * 200)
    cut = fit_clip_context(words)
    assert clip_token_count(cut) == CONTEXT_LENGTH and set(cut.split()) == {"elbow"}


def test_make_enhancer_kinds(monkeypatch):
    assert isinstance(make_enhancer("none"), NoEnhancer) and make_enhancer("none").enhance(" kick ").text == "kick"
    assert isinstance(make_enhancer("offline"), OfflineEnhancer)
    with pytest.raises(ValueError, match="unknown enhancer"):
        make_enhancer("gpt")
    monkeypatch.delenv("ANYSKILL_LLM_MODEL", raising=False)
    with pytest.warns(EnhancementFallbackWarning, match="no LLM configured"):
        assert isinstance(make_enhancer("llm"), OfflineEnhancer)
    monkeypatch.setenv("ANYSKILL_LLM_MODEL", "llama3.1")
    monkeypatch.setenv("ANYSKILL_LLM_CACHE", "off")
    llm = make_enhancer("llm", base_url="http://127.0.0.1:9/v1")
    assert isinstance(llm, LLMEnhancer) and llm.cache is None and "llama3.1" in llm.description
    assert [enhancer_provenance(e)["llm_model"] for e in (llm, OfflineEnhancer(), NoEnhancer())] == [
        "llama3.1", "offline", "none"]
    assert enhancer_provenance(OfflineEnhancer())["enhancer"].startswith(f"offline (lexicon of {len(LEXICON)} ")


def test_cache_is_keyed_by_model_and_survives_broken_lines(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "cache.jsonl"
    cache = EnhancementCache(path)
    key = cache_key("m1", "system", "wave hi")
    assert cache.get(key) is None
    cache.put(key, "m1", "wave hi", "raised arm")
    with open(path, "a") as f:
        f.write('{"key": "cut sho\n')
    again = EnhancementCache(path)
    assert again.get(key) == "raised arm" and again.get(cache_key("m2", "system", "wave hi")) is None
    assert again.skipped_lines == 1 and json.loads(path.read_text().splitlines()[0])["model"] == "m1"
    monkeypatch.setenv("ANYSKILL_LLM_CACHE", "off")
    assert default_cache_path() is None
    monkeypatch.setenv("ANYSKILL_LLM_CACHE", str(tmp_path / "c.jsonl"))
    assert default_cache_path() == tmp_path / "c.jsonl"


def test_prompt_sets_load_sample_and_enhance(tmp_path, offline):
    general = PromptSet.load("general")
    assert general.texts == AUTHORS_GENERAL and math.isclose(sum(general.weights), 1.0)
    path = tmp_path / "p.yaml"
    path.write_text("texts:\n  - {weight: 3, text: kick}\n  - {weight: 1, text: wave hi}\n")
    ps = PromptSet.load(path)
    assert ps.texts == ("kick", "wave hi") and torch.allclose(ps.probabilities, torch.tensor([0.75, 0.25]))
    draws = ps.sample(20000, torch.Generator().manual_seed(0))
    assert abs(draws.float().mean().item() - 0.25) < 0.02
    assert PromptSet.from_record(ps.record()) == ps
    enhanced, records = PromptSet.from_texts(["kick", "kicking", "moonwalk"]).enhanced(offline)
    assert enhanced.texts == (PAPER_FIG6["kick"], "moonwalk") and enhanced.weights == (2.0, 1.0)
    assert [r.original for r in records] == ["kick", "kicking", "moonwalk"]


@pytest.mark.parametrize("content, message", [
    ("texts:\n  - {weight: -1, text: kick}\n", "weight must be a finite number >= 0"),
    ("texts:\n  - {weight: .nan, text: kick}\n", "weight must be a finite number >= 0"),
    ("texts:\n  - {weight: 0, text: kick}\n", "sum to 0"),
    ("texts:\n  - {weight: 1, text: kick}\n  - {weight: 1, text: kick}\n", "repeated prompts"),
    ("texts:\n  - {weight: 1, text: '  '}\n", "non-empty string"),
    ("texts:\n  - {weight: 1}\n", "expected {weight, text}"),
    ("texts:\n  - {weight: 1, text: kick, extra: 2}\n", "expected {weight, text}"),
    ("texts: []\n", "1 to"),
    ("prompts:\n  - {weight: 1, text: kick}\n", "top-level 'texts'"),
    ("texts: [\n", "not valid YAML"),
])
def test_bad_prompt_files_raise_one_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(PromptSetError, match=message) as info:
        PromptSet.load(path)
    assert str(path) in str(info.value)


def test_prompt_file_paths_are_checked(tmp_path):
    with pytest.raises(PromptSetError, match="does not exist"):
        PromptSet.load(tmp_path / "missing.yaml")
    with pytest.raises(PromptSetError, match="must be YAML"):
        PromptSet.load(tmp_path / "prompts.txt")
    with pytest.raises(PromptSetError, match="bundled set name"):
        PromptSet.load("no_such_set")
