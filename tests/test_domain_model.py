"""The domain text–image model ("domain model of this humanoid, closed vocabulary — not CLIP"): captioner rules on the
bundled clips, the loss, loading through ClipModel, and that its text and image paths carry the pose."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from anyskill.domain.captions import (
    FACT_BIT,
    caption_frame,
    fact_masks,
    matches,
    measure_facts,
    root_velocity,
)
from anyskill.domain.model import DOMAIN_LABEL, SHIPPED_DOMAIN_MODEL, load_domain_model
from anyskill.domain.train import multi_positive_infonce


def _clip_facts(motion_lib, name):
    clip = motion_lib.clips[motion_lib.clip_names.index(name)]
    pos, rot = clip.body_states()
    vel = root_velocity(torch.from_numpy(clip.root_pos).float(), clip.dt)
    return {k: float(v.float().mean()) for k, v in measure_facts(torch.from_numpy(pos).float(),
                                                                 torch.from_numpy(rot[:, 0]).float(), vel).items()}


def test_captioner_reads_the_authored_clips(motion_lib):
    idle = _clip_facts(motion_lib, "idle_stand")
    assert idle["standing_still"] > 0.9 and idle["both_arms_up"] == 0.0 and idle["squat"] == 0.0
    arms = _clip_facts(motion_lib, "raise_both_arms")
    assert arms["both_arms_up"] > 0.4 and arms["right_arm_up"] == 0.0
    wave = _clip_facts(motion_lib, "wave_right_hand")
    assert wave["right_hand_raised"] > 0.4 and wave["left_hand_raised"] == 0.0
    assert _clip_facts(motion_lib, "squat")["deep_squat"] > 0.2
    assert _clip_facts(motion_lib, "bow")["bent_forward"] > 0.3
    kick = _clip_facts(motion_lib, "kick")
    assert kick["right_kick"] > 0.1 and kick["left_kick"] == 0.0
    assert _clip_facts(motion_lib, "arms_crossed")["arms_crossed"] > 0.5
    assert _clip_facts(motion_lib, "amp_humanoid_run")["running"] > 0.8
    assert _clip_facts(motion_lib, "amp_humanoid_walk")["walking"] > 0.8


def test_captions_match_exactly_the_frames_with_their_facts():
    up = 1 << FACT_BIT["both_arms_up"]
    upright = 1 << FACT_BIT["upright"]
    frames = torch.tensor([up | upright, upright, up], dtype=torch.int64)
    caps = torch.tensor([up, upright, up | upright], dtype=torch.int64)
    assert matches(caps, frames).tolist() == [[True, False, True], [True, True, False], [True, False, False]]
    rng = np.random.default_rng(0)
    for split in ("train", "heldout", "oov"):
        for _ in range(20):
            cap = caption_frame(int(frames[0]), rng, split)
            assert cap is not None and cap.mask & int(frames[0]) == cap.mask and cap.text
    masks = fact_masks({"both_arms_up": torch.tensor([True, False]), "upright": torch.tensor([True, True])},
                       torch.tensor([3, -1]))
    assert masks.tolist() == [up | upright | (1 << 35), upright]


def test_heldout_phrasings_recombine_known_words_and_oov_ones_do_not(motion_lib):
    """Held-out phrasings and templates are unseen sentences made of training tokens (the vocabulary is closed);
    the unseen-word synonyms have tokens outside it."""
    from anyskill.domain.captions import FACTS, phrase_split, template_split
    from anyskill.domain.train import build_vocab, tokenizer, training_texts

    texts = training_texts(list(motion_lib.descriptions))
    vocab = set(build_vocab(texts).tolist())
    tok = tokenizer()
    for split, known in (("heldout", True), ("oov", False)):
        prompts = [t.format(x=phrase_split(n, split)[0]) for n in FACTS for t in template_split(split)]
        assert not set(prompts) & set(texts)
        for prompt, ids in zip(prompts, tok(prompts), strict=True):
            inside = all(int(i) in vocab for i in ids[ids != 0])
            assert inside == known, (split, prompt)


def test_word_dropout_replaces_only_word_tokens():
    from anyskill.domain.model import EOT, SOT
    from anyskill.domain.train import drop_words, tokenizer

    tokens = tokenizer()(["raise both arms above the head", "bow"])
    out = drop_words(tokens, 1.0, 7, torch.Generator().manual_seed(0))
    special = (tokens == 0) | (tokens == SOT) | (tokens == EOT)
    assert torch.equal(out[special], tokens[special]) and (out[~special] == 7).all()
    assert torch.equal(drop_words(tokens, 0.0, 7, torch.Generator()), tokens)


def test_multi_positive_infonce_is_infonce_with_one_positive_each():
    g = torch.Generator().manual_seed(0)
    t, v = (F.normalize(torch.randn(6, 8, generator=g), dim=-1) for _ in range(2))
    scale = torch.tensor(10.0)
    eye = torch.eye(6, dtype=torch.bool)
    logits = scale * t @ v.T
    expected = 0.5 * (F.cross_entropy(logits, torch.arange(6)) + F.cross_entropy(logits.T, torch.arange(6)))
    assert torch.allclose(multi_positive_infonce(t, v, eye, scale), expected, atol=1e-6)
    # more positives can only lower the loss; all-positive rows cost nothing
    assert multi_positive_infonce(t, v, torch.ones(6, 6, dtype=torch.bool), scale).abs() < 1e-6


@pytest.fixture(scope="module")
def domain():
    from anyskill.reward.clip_model import ClipModel, ClipSpec

    return ClipModel(ClipSpec(weights="anyskill-domain"))


@pytest.fixture(scope="module")
def poses(motion_lib):
    """224-px renders (the reward camera's default size) of four clip frames with known facts."""
    import mujoco

    from anyskill.hlc.goal import clip_qpos
    from anyskill.humanoid.model import load_humanoid
    from anyskill.sim.camera import CameraSpec
    from anyskill.sim.render import StateRenderer

    chosen = {"both arms raised above the head": ("raise_both_arms", "both_arms_up"),
              "a deep squat": ("squat", "deep_squat"), "torso bent forward": ("bow", "bent_forward"),
              "standing still": ("idle_stand", "standing_still")}
    qpos = []
    for _, (name, fact) in chosen.items():
        clip = motion_lib.clips[motion_lib.clip_names.index(name)]
        pos, rot = clip.body_states()
        vel = root_velocity(torch.from_numpy(clip.root_pos).float(), clip.dt)
        f = measure_facts(torch.from_numpy(pos).float(), torch.from_numpy(rot[:, 0]).float(), vel)[fact]
        frame = int(f.nonzero()[len(f.nonzero()) // 2])  # a frame in the middle of the fact
        qpos.append(clip_qpos(clip, frame / clip.fps, centre=True))
    renderer = StateRenderer(mujoco.MjModel.from_xml_path(str(load_humanoid().xml_path)))
    frames = renderer.render_qpos(np.stack(qpos))
    small = StateRenderer(mujoco.MjModel.from_xml_path(str(load_humanoid().xml_path)),
                          CameraSpec(width=112, height=112))
    return list(chosen), frames, small.render_qpos(np.stack(qpos))


def test_shipped_model_is_small_and_carries_its_card():
    assert SHIPPED_DOMAIN_MODEL.stat().st_size < 20 * 2**20
    model = load_domain_model()
    assert model.card["label"] == DOMAIN_LABEL and model.card["training"]["steps"] > 0
    assert SHIPPED_DOMAIN_MODEL.with_suffix(".md").read_text().count("not CLIP") >= 2


def test_domain_model_loads_and_is_labelled(domain):
    desc = domain.spec.description
    assert "not CLIP" in desc and DOMAIN_LABEL in desc and "sha256:" in desc
    from anyskill.reward.clip_model import ClipSpec

    assert ClipSpec(weights="anyskill-domain").description == desc  # stable identity
    assert domain.model.projection is not None
    with pytest.raises(FileNotFoundError):
        from anyskill.reward.clip_model import ClipModel

        ClipModel(ClipSpec(weights="anyskill-domain:/nonexistent/model.pth"))


def test_features_are_unit_norm_and_texts_differ(domain, poses):
    _, frames, _ = poses
    img = domain.encode_images(frames)
    prompts = ["raise both arms above the head", "squat down", "bow", "kick with the right leg",
               "wave with the right hand", "arms down by the sides"]
    txt = domain.encode_text(prompts)
    assert torch.allclose(img.norm(dim=-1), torch.ones(len(img)), atol=1e-5)
    assert torch.allclose(txt.norm(dim=-1), torch.ones(len(txt)), atol=1e-5)
    off = (txt @ txt.T)[~torch.eye(len(txt), dtype=torch.bool)]
    assert off.max() < 0.9, off


def test_text_finds_its_pose_among_held_out_renders(domain, poses):
    """Each caption (held-out phrasings too) scores its own pose's 224-px render highest of the four: 4/4 where a
    random ranking gets 1/4."""
    texts, frames, small = poses
    heldout = ["two hands raised over the head", "squatting down low", "body bent forward at the waist",
               "standing relaxed with arms down"]
    for prompts in (texts, heldout):
        sim = domain.encode_text(prompts) @ domain.encode_images(frames).T
        assert sim.argmax(dim=1).tolist() == [0, 1, 2, 3], sim
    # the training resolution (112 px) and the reward camera's (224 px) give the same features
    cos = (domain.encode_images(frames) * domain.encode_images(small)).sum(-1)
    assert cos.min() > 0.9, cos


def test_reward_reaches_the_domain_model_through_its_weights_registry():
    """``anyskill.reward`` names the domain package once, in its weights registry, and loads it from there."""
    import anyskill.domain.model as dm
    from anyskill.reward.clip_model import WEIGHT_PROVIDERS, ClipSpec, provider_name, weights_provider

    assert WEIGHT_PROVIDERS[dm.DOMAIN_WEIGHTS] == "anyskill.domain.model"
    assert weights_provider("anyskill-domain:/some/file.pth") is dm and weights_provider("random") is None
    assert provider_name("anyskill-domainX") is None and not ClipSpec(weights="laion2b_s34b_b79k").is_domain
    assert ClipSpec(weights=dm.DOMAIN_WEIGHTS).description == dm.describe_weights(dm.DOMAIN_WEIGHTS)


def test_domain_e2e_command(tmp_path, monkeypatch, capsys):
    """``anyskill domain-e2e``: the prompts it is asked for (and their opposites), e2e.json, and with ``--card`` the
    end-to-end JSON beside a model's metrics and its card rewritten (an earlier controller's table kept)."""
    import json
    import shutil

    import anyskill.domain.e2e as e2e
    from anyskill.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["domain-e2e", "--help"])
    assert exc.value.code == 0 and "--random-floor" in capsys.readouterr().out
    calls = []

    def fake(clip_model, projection, prompt, fact, llc, out_dir, settings, motion_lib=None, reward_source="projection",
             upright=False):
        calls.append((prompt, fact, settings.num_envs, upright, settings.latent_action))
        return {"prompt": prompt, "fact": fact, "model": clip_model.spec.description, "num_envs": settings.num_envs,
                "epochs": settings.epochs, "train_s": 0.0, **{f"{t}_{k}": 0.5 for t in ("before", "after")
                                                              for k in ("fact_rate", "quantity", "similarity",
                                                                        "fallen_rate")}}

    monkeypatch.setattr(e2e, "train_and_measure", fake)
    ck = tmp_path / "ck"
    ck.mkdir()
    shutil.copy(SHIPPED_DOMAIN_MODEL.with_name("anyskill_domain_metrics.json"), ck / "anyskill_domain_metrics.json")
    (ck / "anyskill_domain_e2e.json").write_text(json.dumps({"rows": [], "previous_controller": {"rows": ["old"]}}))
    out = tmp_path / "run"
    assert main(["domain-e2e", "--only", "0", "--opposites", "--upright", "--envs", "4", "--out", str(out),
                 "--llc", "some_llc.pth", "--card", str(ck / "anyskill_domain_e2e.json"),
                 "--latent-action", "anchored"]) == 0
    assert calls == [("raise both arms above the head", "both_arms_up", 4, True, "anchored"),
                     ("arms down by the sides", "both_arms_up", 4, True, "anchored")]
    record = json.loads((out / "e2e.json").read_text())
    assert [r["prompt"] for r in record["rows"]] == [c[0] for c in calls] and record["llc"] == "some_llc.pth"
    kept = json.loads((ck / "anyskill_domain_e2e.json").read_text())
    assert kept["previous_controller"] == {"rows": ["old"]} and len(kept["rows"]) == 2
    assert "arms down by the sides" in (ck / "anyskill_domain.md").read_text()
    assert main(["domain-e2e", "--only", "9", "--out", str(out)]) == 2  # a prompt number that does not exist
