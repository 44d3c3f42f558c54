"""Building the shipped domain model end to end: data -> training -> held-out evaluation -> checkpoint + card.

``anyskill train-domain-clip`` calls :func:`build_domain_model`. The result is a **domain model of this humanoid,
closed vocabulary — not CLIP** (:mod:`anyskill.domain.model`): the checkpoint (``anyskill_domain.pth``), its
metrics (``anyskill_domain_metrics.json``) and its model card (``anyskill_domain.md``, written by
:func:`write_model_card`, which also embeds the end-to-end table of :mod:`anyskill.domain.e2e` when its JSON is
there).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anyskill.config.domain import DomainTrainSettings
from anyskill.domain.captions import (
    FACTS,
    HELDOUT_TEMPLATES,
    LEXICON_FACTS,
    OOV_PHRASES,
    OOV_TEMPLATES,
    PHRASES,
    TEMPLATES,
)
from anyskill.domain.data import SOURCES, DomainData, cpu_seconds, file_sha256, generate_domain_data
from anyskill.domain.evaluate import attribute_metrics, retrieval_metrics
from anyskill.domain.model import DOMAIN_LABEL, DOMAIN_WEIGHTS, SHIPPED_DOMAIN_MODEL, save_domain_model
from anyskill.domain.train import train_domain_model
from anyskill.provenance import Provenance
from anyskill.reward.clip_model import ClipModel, ClipSpec

DEFAULT_DATA = Path("runs/domain_data/data.pt")
SHIPPED_E2E = SHIPPED_DOMAIN_MODEL.with_name("anyskill_domain_e2e.json")
"""The shipped model's end-to-end table (:mod:`anyskill.domain.e2e`; its card embeds it, ``anyskill domain-e2e
--card`` rewrites it)."""


def evaluate_model(clip_model: ClipModel, data: DomainData, gallery: int = 500, seed: int = 0) -> dict[str, Any]:
    """Retrieval (held-out frames x train / held-out phrasings) and per-attribute metrics (train / held-out /
    unseen-word phrasings) on ``data``'s held-out frames (a seeded sample of ``gallery`` frames for retrieval; all
    held-out frames for attributes)."""
    held = data.heldout.nonzero().flatten()
    g = torch.Generator().manual_seed(seed)
    pick = held[torch.randperm(len(held), generator=g)[:gallery]]
    t0 = time.perf_counter()
    feats_all = clip_model.encode_images(data.frames[held])
    pos = {int(i): k for k, i in enumerate(held)}
    feats = feats_all[[pos[int(i)] for i in pick]]
    out: dict[str, Any] = {"clip_weights": clip_model.spec.description, "heldout_frames": len(held)}
    for split in ("train", "heldout"):
        out[f"retrieval_{split}_phrasings"] = retrieval_metrics(clip_model, data.frames[pick], data.masks[pick],
                                                                split, seed, image_features=feats)
        out[f"attributes_{split}_phrasings"] = attribute_metrics(clip_model, data.frames[held], data.masks[held],
                                                                 split, seed=seed, image_features=feats_all)
    out["attributes_oov_phrasings"] = attribute_metrics(clip_model, data.frames[held], data.masks[held], "oov",
                                                        seed=seed, image_features=feats_all)
    out["eval_s"] = round(time.perf_counter() - t0, 1)
    return out


def build_domain_model(data_path: str | Path = DEFAULT_DATA, out: str | Path = SHIPPED_DOMAIN_MODEL,
                       llc_checkpoint: str | Path | None = None, regenerate: bool = False,
                       settings: DomainTrainSettings | None = None, rollout_frames: int = 4000,
                       random_floor: bool | str | Path = True, progress: bool = True,
                       workers: int = 1) -> dict[str, Any]:
    """Generate the data (unless ``data_path`` exists and not ``regenerate``), train, evaluate against the held-out
    split (and random ViT-B/32 weights when ``random_floor``; a path: that JSON of :func:`evaluate_random_floor`,
    computed in parallel), write the checkpoint, metrics JSON and model card beside ``out``. Returns the metrics."""
    from anyskill.llc.shipped import shipped_llc

    settings = settings or DomainTrainSettings()

    data_path, out = Path(data_path), Path(out)
    prov = Provenance("anyskill train-domain-clip", config={"data": str(data_path), "settings": str(settings)},
                      seed=settings.seed, clip_weights=f"{DOMAIN_WEIGHTS} ({DOMAIN_LABEL})")
    if regenerate or not data_path.is_file():
        llc = Path(llc_checkpoint) if llc_checkpoint else shipped_llc()
        t0, c0 = time.perf_counter(), cpu_seconds()
        data = generate_domain_data(llc, num_rollout_frames=rollout_frames, workers=workers)
        data.meta.update(wall_s=round(time.perf_counter() - t0, 1), cpu_s=round(cpu_seconds() - c0, 1))
        data.save(data_path)
    data = DomainData.load(data_path)
    train = ~data.heldout
    result = train_domain_model(data.frames, data.masks, data.clip_id, data.body_pos, train, data.clip_descriptions,
                                settings=settings, progress=progress)
    card: dict[str, Any] = {"label": DOMAIN_LABEL, "data": data.meta, "training": result.info}
    save_domain_model(result.model, out, card=card, projection=result.projection)
    model = ClipModel(ClipSpec(weights=f"{DOMAIN_WEIGHTS}:{out.resolve()}"))
    metrics: dict[str, Any] = {"label": DOMAIN_LABEL, "checkpoint": str(out), "checkpoint_sha256": file_sha256(out, 12),
                               "size_mb": round(out.stat().st_size / 2**20, 2), "data": data.meta,
                               "data_counts": data_counts(data), "training": result.info,
                               "domain": evaluate_model(model, data)}
    if isinstance(random_floor, (str, Path)):
        metrics["random_vit_b32"] = json.loads(Path(random_floor).read_text())
    elif random_floor:
        metrics["random_vit_b32"] = evaluate_model(ClipModel(ClipSpec(weights="random")), data)
    metrics["loss_curve"] = [round(x, 4) for x in result.losses[::10]]
    metrics["provenance"] = prov.finish().as_dict()
    metrics_path = out.with_name(out.stem + "_metrics.json")
    metrics_path.write_text(json.dumps(metrics, indent=1, default=str))
    write_model_card(metrics_path)
    return metrics


def evaluate_random_floor(data_path: str | Path, out_json: str | Path) -> dict[str, Any]:
    """:func:`evaluate_model` of random ViT-B/32 weights on the held-out frames of the data at ``data_path``, written
    to ``out_json`` (for ``build_domain_model(random_floor=out_json)``)."""
    result = evaluate_model(ClipModel(ClipSpec(weights="random")), DomainData.load(data_path))
    Path(out_json).parent.mkdir(parents=True, exist_ok=True)
    Path(out_json).write_text(json.dumps(result, indent=1))
    return result


def data_counts(data: DomainData) -> dict[str, Any]:
    """Frames per source and split, and how many frames have each fact."""
    counts: dict[str, Any] = {"frames": len(data), "heldout": int(data.heldout.sum())}
    for i, name in enumerate(SOURCES):
        counts[f"source_{name}"] = int((data.source == i).sum())
    counts["facts"] = {n: int(((data.masks >> i) & 1).sum()) for i, n in enumerate(FACTS)}
    return counts


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def e2e_markdown(record: dict[str, Any]) -> str:
    """The end-to-end table of a :func:`anyskill.domain.e2e.run_domain_e2e` record, as Markdown."""
    s = record["settings"]
    lines = ["## End to end: high-level policies trained with this model's reward", "",
             f"Reduced `laptop` scale (the profile is 64 envs x 300 epochs): per row envs x epochs, "
             f"{s['horizon']} HLC steps "
             f"(5 LLC steps each), MLP {s['units']}, lr {s['learning_rate']}, state-projection reward"
             + (f" (rendered reward: {record['render_settings']['num_envs']} envs x "
                f"{record['render_settings']['epochs']} epochs)" if record.get("render_settings") else "")
             + f", controller `{record['llc']}`. Measured on {s['eval_envs']} deterministic rollouts of "
             f"{s['eval_seconds']} s from standing by the captioner's rules; 'rate' is the fraction of frames with the "
             "fact, 'quantity' its continuous measure (hands over head: the lower hand's height over the head "
             "origin, m; pelvis height over the lower foot, m; forward tilt, deg; right foot ahead of the pelvis, m; "
             "right hand over its shoulder, m); 'similarity' the reward model's own mean cosine on those rollouts "
             "(projection).", "",
             "| prompt | fact | reward model | reward source | envs x epochs | rate before | rate after | "
             "quantity before | quantity after | similarity before -> after | fallen after | train s |",
             "|" + "---|" * 12]
    for r in record["rows"]:
        label = "domain" if "not CLIP" in r["model"] else ("random ViT-B/32" if "RANDOM" in r["model"] else r["model"])
        size = f"{r.get('num_envs', s['num_envs'])} x {r.get('epochs', s['epochs'])}"
        lines.append(f"| {r['prompt']} | {r['fact']} | {label} | {r.get('reward_source', 'projection')} | {size} | "
                     f"{r['before_fact_rate']:.3f} | "
                     f"{r['after_fact_rate']:.3f} | {r['before_quantity']:.3f} | {r['after_quantity']:.3f} | "
                     f"{r['before_similarity']:.3f} -> {r['after_similarity']:.3f} | "
                     f"{r['after_fallen_rate']:.3f} | {r['train_s']} |")
    if record.get("notes"):
        lines += [""] + [f"- {n}" for n in record["notes"]]
    return "\n".join(lines)


def write_model_card(metrics_path: str | Path, e2e_path: str | Path | None = None) -> Path:
    """Write ``<model>.md`` beside the metrics JSON: what the model is and is not, data, captioner rules, vocabulary,
    training time, retrieval and per-attribute metrics beside random ViT-B/32, and the end-to-end table (from
    ``e2e_path``, default ``<model>_e2e.json`` beside it, when present)."""
    metrics_path = Path(metrics_path)
    m = json.loads(metrics_path.read_text())
    stem = metrics_path.name.removesuffix("_metrics.json")
    e2e_file = Path(e2e_path) if e2e_path else metrics_path.with_name(stem + "_e2e.json")
    tr, d, c = m["training"], m["data"], m["data_counts"]
    lines = [
        f"# `{stem}` — {DOMAIN_LABEL}",
        "",
        "**This is not CLIP.** It is a small text–image model trained by this project on renders of this one humanoid, "
        "seen by the project's default camera on the default floor, with captions written by rules from the measured "
        "body positions. Its vocabulary is closed: words outside its captions map to one unknown token. Use it to "
        "check the text-reward path offline; use pretrained open_clip (`clip_weights=\"laion2b_s34b_b79k\"`) for "
        "open-vocabulary results.",
        "",
        f"- checkpoint: `{m['checkpoint']}` ({m['size_mb']} MB, sha256 `{m['checkpoint_sha256']}`); select it with "
        f"`ClipSpec(weights=\"{DOMAIN_WEIGHTS}\")` / `--clip-weights {DOMAIN_WEIGHTS}`",
        f"- identity recorded in provenance: `ClipSpec(weights=\"{DOMAIN_WEIGHTS}\").description`",
        "- rebuild: `anyskill train-domain-clip` (data `anyskill.domain.data`, training "
        "`anyskill.domain.train`, this card `anyskill.domain.build`)",
        "",
        "## What it cannot do",
        "",
        "- no open vocabulary: only the phrasings below (and close recombinations) mean anything; other prompts warn "
        "and give arbitrary features;",
        "- no other characters, cameras, scenes or objects (the ball and door scenes were never rendered for it);",
        "- single frames only: waving, walking vs running and kicking are judged from one pose (speed is guessed from "
        "the pose; a wave is 'right hand raised'); left/right come from the humanoid's own frame, so they depend on "
        "the model seeing which way the body faces;",
        "- its facts are the captioner's thresholds (below), not a person's judgement.",
        "",
        "## Data (made here)",
        "",
        f"- {c['frames']} frames, {d['size_px']} px, camera: {d['camera']}; held out: {c['heldout']} frames "
        "(15 % of 1-2 s sequences, never neighbours of training frames)",
        f"- clip replays (one frame in {d['clip_stride']} of the 18 bundled clips, {d['clip_views']} views): "
        f"{c['source_clip']}; controller rollouts of `{Path(d['llc_checkpoint']).name}` (sha256 `{d['llc_sha256']}`) "
        f"under fixed random latents: {c['source_rollout_fixed_latent']}, under random latent sequences: "
        f"{c['source_rollout_latent_sequence']}",
        f"- generation: {d.get('wall_s', '?')} s wall, {d.get('cpu_s', '?')} s CPU (render {d['render_s']} s)",
        "",
        "Frames per fact (all frames): " + ", ".join(f"{k} {v}" for k, v in c["facts"].items()),
        "",
        "## Captioner (anyskill/domain/captions.py)",
        "",
        "Measured in the humanoid's heading frame: both/right/left arm up = hand 0.10 m above the head origin; hand "
        "raised = above its shoulder by 0.10 m (the other below its own); arm forward / to the side = hand 0.35 m "
        "ahead of / outward from its shoulder within 0.25 m of shoulder height; arms down = hands 0.35 m below the "
        "shoulders; arms crossed = both hands in front at chest height, each at or past the midline; knee up = knee "
        "within 0.22 m of pelvis height and 0.15 m above the other; kick = foot 0.40 m ahead of the pelvis and 0.30 m "
        "up; legs apart = feet 0.50 m apart sideways; half / deep squat = pelvis below 0.78 / 0.62 m over the lower "
        "foot with the torso upright; bent forward = pelvis-to-head tilt over 35 deg; walking / running = root speed "
        "0.35-1.8 / over 1.8 m/s; still = under 0.15 m/s; fallen = head below 0.55 m. Captions name 1-2 true facts; "
        "15 % are the clip's manifest description (clip frames), 15 % an offline-lexicon pose description the frame "
        "satisfies (" + ", ".join(sorted(LEXICON_FACTS)) + ").",
        "",
        "Phrasings (the last of each list and the last "
        f"{HELDOUT_TEMPLATES} sentence templates are held out of training; they are new combinations of words the "
        "training captions use, since the vocabulary is closed):",
        "",
    ]
    lines += [f"- `{n}`: " + " | ".join(PHRASES[n]) for n in FACTS]
    lines += ["- templates: " + " | ".join(f"`{t}`" for t in TEMPLATES), "",
              "Unseen-word synonyms (column 'AUC, unseen words' below; template "
              + " | ".join(f"`{t}`" for t in OOV_TEMPLATES) + "): " + "; ".join(OOV_PHRASES[n] for n in FACTS)
              + ". Most of their words are outside the vocabulary (one unknown token), so they show its limit.", ""]
    s = tr["settings"]
    lines += [
        "## Model and training",
        "",
        f"- image tower: CNN, channels {tr['config']['channels']}, input {tr['config']['image_size']} px (frames are "
        "centre-cropped, resized with antialiased bicubic and CLIP-normalised by `ClipModel.preprocess`, the same "
        "function the reward path uses); text tower: open_clip's bundled BPE tokenizer mapped to a closed vocabulary "
        f"of {tr['vocab_size']} tokens, {tr['config']['text_layers']}-layer transformer, width "
        f"{tr['config']['text_width']}; features {tr['config']['embed_dim']}-D",
        f"- multi-positive InfoNCE (every caption's positives are all frames it fits), AdamW lr {s['lr']}, batch "
        f"{s['batch_size']}, {tr['steps']} steps, shifts up to {s['shift_px']} px, word dropout to the unknown token "
        f"{s.get('word_dropout', 0.0)}",
        f"- training: {tr['train_wall_s']} s wall, **{tr['train_cpu_s']} s CPU** on {tr['torch_threads']} thread "
        "(nice 19, sharing 2 cores with another training run); final loss "
        f"{_fmt(tr['final_loss'])}",
        f"- state projection (body positions -> this model's image feature) fitted on the training frames: held-out "
        f"cosine {tr['projection_val_cosine']}",
        "",
        "## Held-out retrieval",
        "",
        "Gallery of held-out frames, one captioner caption each. A hit is a retrieved item whose facts fit (several "
        "frames fit one caption, so chance is given).",
        "",
        "| model | phrasings | gallery | text→image R@1 | R@5 | chance R@1 | image→text R@1 | R@5 | chance R@1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    models = [("domain", "domain model (this)")] + ([("random_vit_b32", "random ViT-B/32")]
                                                   if "random_vit_b32" in m else [])
    for key, label in models:
        for split in ("train", "heldout"):
            r = m[key][f"retrieval_{split}_phrasings"]
            lines.append(f"| {label} | {split} | {r['gallery']} | {_fmt(r['t2i_r1'])} | {_fmt(r['t2i_r5'])} | "
                         f"{_fmt(r['chance_t2i_r1'])} | {_fmt(r['i2t_r1'])} | {_fmt(r['i2t_r5'])} | "
                         f"{_fmt(r['chance_i2t_r1'])} |")
    lines += ["", "## Per-attribute accuracy (held-out frames)", "",
              "ROC-AUC of the cosine between each frame and the fact's phrase, and balanced accuracy at a threshold "
              "chosen on the other half of the frames (two-fold); 0.5 is chance.", "",
              "| fact | frames with it | prompt (held-out phrasing) | AUC | bal. acc. | AUC, train phrasing | "
              "AUC, unseen words | random ViT-B/32 AUC |",
              "|---|---|---|---|---|---|---|---|"]
    held = {r["fact"]: r for r in m["domain"]["attributes_heldout_phrasings"]}
    trn = {r["fact"]: r for r in m["domain"]["attributes_train_phrasings"]}
    oov = {r["fact"]: r for r in m["domain"].get("attributes_oov_phrasings", [])}
    rnd = {r["fact"]: r for r in m.get("random_vit_b32", {}).get("attributes_heldout_phrasings", [])}

    def auc(rows: dict[str, Any], name: str) -> str:
        return f"{rows[name]['auc']:.3f}" if name in rows else "—"

    for name, r in held.items():
        lines.append(f"| {name} | {r['positives']}/{r['frames']} | {r['prompt']} | {r['auc']:.3f} | "
                     f"{r['balanced_accuracy']:.3f} | {auc(trn, name)} | {auc(oov, name)} | {auc(rnd, name)} |")
    aucs = [r["auc"] for r in held.values()]
    if aucs:
        lines += ["", f"Held-out phrasings: AUC > 0.7 for {sum(a > 0.7 for a in aucs)} of {len(aucs)} facts "
                  f"(median {sorted(aucs)[len(aucs) // 2]:.3f})."]
    if e2e_file.is_file():
        lines += ["", e2e_markdown(json.loads(e2e_file.read_text()))]
    else:
        lines += ["", "## End to end", "", "Not yet run (`anyskill.domain.e2e.run_domain_e2e`)."]
    lines += ["", f"Provenance: commit `{m['provenance']['commit']}`, started {m['provenance']['started']}."]
    path = metrics_path.with_name(stem + ".md")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_e2e_card(record: dict[str, Any], e2e_json: str | Path = SHIPPED_E2E) -> Path:
    """Record ``record`` as the model's end-to-end table (``e2e_json``, beside the checkpoint, keeping an earlier
    controller's table that the file holds under ``previous_controller``) and rewrite the model card from the metrics
    JSON beside it. Returns the card's path."""
    e2e_json = Path(e2e_json)
    if e2e_json.is_file():
        previous = json.loads(e2e_json.read_text()).get("previous_controller")
        if previous is not None:
            record = {**record, "previous_controller": previous}
    e2e_json.write_text(json.dumps(record, indent=1, default=lambda o: np.asarray(o).tolist()))
    stem = e2e_json.name.removesuffix("_e2e.json")
    return write_model_card(e2e_json.with_name(stem + "_metrics.json"), e2e_json)
