"""``anyskill train-hlc`` and ``anyskill rollout``: the high-level policy from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from anyskill.config import SCALES, profile
from anyskill.config.hlc import ANCHOR_SCALE, LATENT_ACTIONS, HLCEnvConfig
from anyskill.config.reward import EARLY_TERMINATIONS


def _clip_and_renderer(weights: str | None, device: str = "cpu", scene: str | None = None):
    """CLIP (``weights``: tag, file or "random"; None: the authors' LAION-2B ViT-B-32; fp16 on CUDA) and the agent
    camera (in ``scene``: the scene's model and camera)."""
    from anyskill.humanoid.model import load_humanoid
    from anyskill.reward.clip_model import DEFAULT_PRETRAINED, ClipModel, ClipSpec
    from anyskill.sim.render import CameraSpec, StateRenderer  # before open_clip: see anyskill.sim.render
    from anyskill.sim.scene import get_scene

    spec = ClipSpec(weights=weights or DEFAULT_PRETRAINED, device=device, half=device.startswith("cuda"))
    clip_model = ClipModel(spec)
    if scene is not None:
        return clip_model, StateRenderer(get_scene(scene).mj_model(), get_scene(scene).camera)
    return clip_model, StateRenderer(load_humanoid().mj_model(), CameraSpec())


def _goal_from_args(args: argparse.Namespace, motion_lib):
    from anyskill.hlc.clip_goals import ImageGoal, TextGoal
    from anyskill.hlc.general import PromptSetGoal
    from anyskill.hlc.goal_spec import find_clip
    from anyskill.hlc.pose_goal import PoseGoal
    from anyskill.reward.projection import StateProjection
    from anyskill.text import PromptSet, make_enhancer

    if args.pose_clip:
        return PoseGoal.from_clip(find_clip(args.pose_clip, motion_lib), args.pose_time)
    if args.reward_source is None:  # train-hlc: the cached state projection; rollout: rendered frames
        args.reward_source = "projection" if getattr(args, "command", None) == "train-hlc" else "render"
    projection = StateProjection.load(args.projection) if args.projection else None
    renderer_needed = args.reward_source == "render"
    clip_model, renderer = _clip_and_renderer(args.clip_weights, getattr(args, "device", None) or "cpu", args.scene)
    renderer = renderer if renderer_needed else None
    if args.reward_source == "projection" and projection is None:
        from anyskill.hlc.projection_cache import calibrated_projection

        projection = calibrated_projection(clip_model, args.llc, scene=args.scene,
                                           scale=getattr(args, "scale", None) or "laptop",
                                           cache_dir=getattr(args, "projection_cache", None),
                                           progress=not getattr(args, "no_progress", False),
                                           on_status=print).projection
    enhancer = make_enhancer(args.enhance)
    if getattr(args, "prompts", None):
        prompts, enhancements = PromptSet.load(args.prompts).enhanced(enhancer)
        for e in enhancements:
            print(f"prompt {e.original!r}" + (f" -> {e.text!r} ({e.enhancer})" if e.changed else ""))
        return PromptSetGoal(clip_model, renderer, prompts, args.reward_source, projection,
                             getattr(args, "render_interval", 1), getattr(args, "render_envs", None), enhancements)
    if args.text:
        enhancement = enhancer.enhance(args.text)
        if enhancement.changed:
            print(f"prompt {enhancement.original!r} -> {enhancement.text!r} ({enhancement.enhancer})")
        return TextGoal(clip_model, renderer, enhancement, args.reward_source, projection,
                        getattr(args, "render_interval", 1), getattr(args, "render_envs", None))
    return ImageGoal(clip_model, renderer, args.image, args.reward_source, projection)


def _train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from anyskill.data import default_library
    from anyskill.hlc.train import train_hlc

    motion_lib = default_library()
    goal = _goal_from_args(args, motion_lib)
    if args.no_early_termination and args.early_termination != "paper":
        raise ValueError("--no-early-termination is --early-termination falls-only; give one of them")
    et = replace(EARLY_TERMINATIONS["falls-only" if args.no_early_termination else args.early_termination],
                 head_rule=not args.no_head_rule)
    env_cfg = HLCEnvConfig(early_termination=et, scene=args.scene, latent_action=args.latent_action,
                           anchor_scale=args.anchor_scale)
    if args.episode_length is not None:
        env_cfg = replace(env_cfg, episode_length=args.episode_length)
    out = args.out or f"runs/hlc_{args.scale}"
    result = train_hlc(goal, args.llc, args.scale, out, seed=args.seed, num_envs=args.num_envs,
                       max_epochs=args.epochs, env_config=env_cfg, motion_lib=motion_lib, device=args.device,
                       progress=not args.no_progress)
    last = result.epoch_stats[-1] if result.epoch_stats else None
    print(f"goal: {goal.description}")
    if last is not None:
        print(f"last epoch {int(last['epoch'])}: similarity {last['similarity']:.4f}, reward {last['reward']:.4f}")
    print(f"checkpoint: {result.checkpoint}\nstatistics: {result.out_dir / 'epoch_stats.csv'}")
    return 0


def _rollout(args: argparse.Namespace) -> int:
    from anyskill.data import default_library
    from anyskill.hlc.goal_spec import goal_from_spec
    from anyskill.hlc.policy import load_hlc
    from anyskill.hlc.rollout import rollout, trained_scene
    from anyskill.reward.projection import StateProjection

    motion_lib = default_library()
    policy = load_hlc(args.checkpoint)
    args.scene = args.scene or trained_scene(policy)
    spec = policy.config.get("goal_spec") or {}
    if policy.condition_dim and not args.text:
        texts = (spec.get("prompts") or {}).get("texts", [])
        raise SystemExit(f"{args.checkpoint} is a general policy: give its prompt with --text (trained on {texts})")
    if args.text or args.image or args.pose_clip:
        args.clip_weights = args.clip_weights or spec.get("clip_weights")  # the CLIP the policy was trained with
        goal = _goal_from_args(args, motion_lib)
        if policy.condition_dim:
            policy.condition_on(goal.text_feature)
    else:
        if not spec:
            raise SystemExit(f"{args.checkpoint} stores no goal recipe; give --text, --image or --pose-clip")
        clip_model = renderer = projection = None
        if spec["kind"] != "pose":
            clip_model, renderer = _clip_and_renderer(args.clip_weights or spec.get("clip_weights"), scene=args.scene)
            projection = StateProjection.load(args.projection) if args.projection else None
            if projection is None:  # a policy trained on the projection is scored on rendered frames
                spec = {**spec, "reward_source": "render"}
        goal = goal_from_spec(spec, clip_model, renderer, projection, motion_lib)
    out = args.out or str(Path(args.checkpoint).with_suffix("")) + "_rollout"
    result = rollout(policy, args.llc, goal, seconds=args.seconds, seed=args.seed, render=not args.no_render,
                     out_dir=out, motion_lib=motion_lib, scene=args.scene)
    print(f"goal: {goal.description}\nmean similarity {result.mean_similarity:.4f}"
          + (f", mean pose error {result.mean_pose_error:.4f} m" if result.pose_error is not None else ""))
    if result.interaction is not None:
        print(f"scene {result.scene}: " + ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v or '-'}" for k, v in result.interaction.items()))
    for name, path in result.files.items():
        print(f"{name}: {path}")
    return 0


def _goal_arguments(p: argparse.ArgumentParser, required: bool, prompt_sets: bool = False) -> None:
    from anyskill.text import ENHANCER_KINDS

    g = p.add_mutually_exclusive_group(required=required)
    g.add_argument("--text", help="text prompt (CLIP text feature)")
    g.add_argument("--image", help="goal image file, PNG/JPG (CLIP image feature)")
    g.add_argument("--pose-clip", help="reference pose from a motion clip: file, bundled stem or library clip name")
    if prompt_sets:
        g.add_argument("--prompts", help="general policy: YAML file of {weight, text} prompts (top key 'texts'), or "
                       "'general' (the authors' eight prompts); the policy reads each env's CLIP text feature")
    p.add_argument("--enhance", default="none", choices=ENHANCER_KINDS,
                   help="rewrite the prompt(s) as body-part descriptions first (paper §4.3): 'llm' (an "
                   "OpenAI-compatible server from ANYSKILL_LLM_MODEL, ANYSKILL_LLM_BASE_URL, ANYSKILL_LLM_API_KEY; the "
                   "offline lexicon when none answers), 'offline' (the curated lexicon), 'none' (default: as given)")
    p.add_argument("--pose-time", type=float, help="time in the pose clip, s (default: its middle)")
    p.add_argument("--clip-weights", help="open_clip pretrained tag (default laion2b_s34b_b79k), checkpoint file, or "
                   "'random' (pipeline tests only); rollout defaults to the checkpoint's")
    p.add_argument("--reward-source", choices=["render", "projection"],
                   help="train-hlc default 'projection': the state projection cached for this CLIP model, controller "
                   "and scene (built on first use, `anyskill calibrate`), or --projection FILE; 'render': render and "
                   "CLIP-encode every frame. rollout default 'render'")
    p.add_argument("--scene", metavar="NAME",
                   help="interaction scene (paper §4.4) of anyskill.sim.scene.SCENES, bundled: 'ball' (a soccer ball), "
                   "'door'; rollout defaults to the scene the policy was trained in")
    p.add_argument("--projection",
                   help="state-projection checkpoint (StateProjection.save) for --reward-source projection")
    p.add_argument("--projection-cache", help="calibration cache folder (default $ANYSKILL_CACHE/projection or "
                   "~/.cache/anyskill/projection)")


def add_hlc_commands(sub) -> None:
    """Add ``train-hlc`` and ``rollout`` to the ``anyskill`` sub-command parser ``sub``."""
    t = sub.add_parser("train-hlc", help="train the high-level policy toward a text, image or pose goal, or a general "
                       "policy on a prompt set")
    _goal_arguments(t, required=True, prompt_sets=True)
    t.add_argument("--llc", required=True, help="frozen low-level controller checkpoint (.pth)")
    t.add_argument("--scale", default="smoke", choices=SCALES)
    t.add_argument("--epochs", type=int, help="PPO epochs (default: the scale's)")
    t.add_argument("--num-envs", type=int, help="parallel humanoids (default: the scale's, "
                   + ", ".join(f"{s} {profile(s).hlc.num_envs}" for s in SCALES) + ")")
    t.add_argument("--episode-length", type=int,
                   help="LLC steps per episode (30 Hz; default: HLCEnvConfig's, 5 s; reference 50)")
    t.add_argument("--no-early-termination", action="store_true",
                   help="ablation: no reset after 8 successive similarity decreases")
    t.add_argument("--no-head-rule", action="store_true", help="ablation: no reset when the head is below 0.15 m")
    t.add_argument("--early-termination", choices=list(EARLY_TERMINATIONS), default="paper",
                   help="paper: similarity resets terminate (the paper's text); truncate: they are bootstrapped like "
                   "time-outs; falls-only: no similarity rule, as --no-early-termination (results/"
                   "early_termination_pose_goals.csv) (default: %(default)s)")
    t.add_argument("--latent-action", choices=LATENT_ACTIONS, default=HLCEnvConfig.latent_action,
                   help="how the policy's action becomes the latent: free normalize(a) (the paper's), anchored "
                        "normalize(prior(s) + sigma a) around the controller's latent prior (fitted once per "
                        "controller and cached in $ANYSKILL_CACHE/prior), anchored_previous around the previous latent "
                        "(default: %(default)s)")
    t.add_argument("--anchor-scale", type=float, default=ANCHOR_SCALE,
                   help="sigma of the anchored latent actions (default: %(default)s)")
    t.add_argument("--render-interval", type=int, default=1,
                   help="render + encode every k-th LLC step and hold the similarity in between (render source)")
    t.add_argument("--render-envs", type=int, help="render only this many envs per step, a window rotating over all")
    t.add_argument("--out", help="run folder (default runs/hlc_<scale>)")
    t.add_argument("--device", help="cpu or cuda:0 (default: cuda:0 for paper when available, else cpu)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=_train)

    r = sub.add_parser("rollout", help="run a trained high-level policy: states (.npz), video, similarity curve")
    r.add_argument("checkpoint", help="high-level policy checkpoint (.pth) from train-hlc")
    r.add_argument("--llc", required=True, help="the low-level controller checkpoint it was trained with")
    _goal_arguments(r, required=False)
    r.add_argument("--seconds", type=float, default=5.0)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", help="folder (default: <checkpoint>_rollout)")
    r.add_argument("--no-render", action="store_true", help="skip the video (no OpenGL needed)")
    r.set_defaults(func=_rollout)
