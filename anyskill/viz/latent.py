"""The low-level controller's latent space Z: encodings of the motion clips, 2-D maps and interpolations.

CALM's encoder maps a 2 s window of motion (60 AMP frames) to a unit vector z in R^64. Windows of the same clip
should land close together (alignment loss) and the whole dataset should spread over the sphere (uniformity loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
import torch.nn.functional as F


@dataclass
class ClipEncodings:
    """Latents of evenly spaced windows of every clip: ``z`` (M, L) unit vectors and a table of what each row is."""

    z: torch.Tensor
    table: pd.DataFrame  # columns: clip, category, end_time_s


@torch.no_grad()
def encode_clips(llc, lib, windows_per_clip: int = 12, dt: float | None = None) -> ClipEncodings:
    """Encode ``windows_per_clip`` windows per clip, their end times spread evenly over the clip (s); frames ``dt`` s
    apart (default: the controller's ``motion_dt``)."""
    dt = llc.motion_dt if dt is None else dt
    steps = llc.enc_steps
    ids, times = [], []
    for c in range(lib.num_clips):
        dur = float(lib.durations[c])
        start = min((steps - 1) * dt, dur)
        ids += [c] * windows_per_clip
        times += np.linspace(start, dur, windows_per_clip).tolist()
    ids_t = torch.tensor(ids, device=lib.device)
    windows = lib.amp_obs_window(ids_t, torch.tensor(times, device=lib.device, dtype=torch.float32), steps, dt)
    z = llc.encode(windows)
    table = pd.DataFrame({"clip": [lib.clip_names[i] for i in ids], "category": [lib.categories[i] for i in ids],
                          "end_time_s": times})
    return ClipEncodings(z=z.cpu(), table=table)


def project_2d(z: torch.Tensor, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """(M, L) -> (M, 2) with t-SNE (cosine metric) or PCA."""
    x = z.cpu().numpy()
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(x)
    if method != "tsne":
        raise ValueError(f"unknown method {method!r}; use 'tsne' or 'pca'")
    from sklearn.manifold import TSNE

    perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
    return TSNE(n_components=2, metric="cosine", init="pca", perplexity=perplexity, random_state=seed).fit_transform(x)


def latent_map(enc: ClipEncodings, method: str = "tsne", seed: int = 0):
    """Scatter of the 2-D projection coloured by category, each clip's name at its centroid."""
    xy = project_2d(enc.z, method, seed)
    df = enc.table.assign(x=xy[:, 0], y=xy[:, 1])
    fig, ax = plt.subplots(figsize=(8, 6.5))
    sns.scatterplot(data=df, x="x", y="y", hue="category", style="category", s=40, ax=ax)
    for clip, g in df.groupby("clip"):
        ax.annotate(clip.replace("amp_humanoid_", "").replace("authored_", ""), (g.x.mean(), g.y.mean()), fontsize=7,
                    ha="center", va="bottom", alpha=0.8)
    ax.set(xticks=[], yticks=[], xlabel=f"{method} 1", ylabel=f"{method} 2", title="motion latents E(window), one dot "
                                                                                   "per 2 s window")
    fig.tight_layout()
    return fig


def latent_similarity_matrix(enc: ClipEncodings) -> pd.DataFrame:
    """Mean cosine similarity between the latents of the windows of every pair of motion clips (C, C)."""
    z = F.normalize(enc.z, dim=-1)
    clips = list(dict.fromkeys(enc.table["clip"]))
    idx = {c: np.nonzero(enc.table["clip"].values == c)[0] for c in clips}
    sim = (z @ z.T).numpy()
    means = [[sim[np.ix_(idx[a], idx[b])].mean() for b in clips] for a in clips]
    return pd.DataFrame(means, index=clips, columns=clips)


def alignment_uniformity(enc: ClipEncodings) -> dict[str, float]:
    """Within-clip mean cosine, between-clip mean cosine, and the uniformity log E exp(-2 ||zi - zj||^2)."""
    m = latent_similarity_matrix(enc).values
    within = float(np.mean(np.diag(m)))
    between = float((m.sum() - np.trace(m)) / (m.size - len(m)))
    z = F.normalize(enc.z, dim=-1)
    d2 = torch.cdist(z, z).pow(2)
    iu = torch.triu_indices(len(z), len(z), 1)
    uniform = float(torch.log(torch.exp(-2 * d2[iu[0], iu[1]]).mean()))
    return {"within_clip_cosine": within, "between_clip_cosine": between, "uniformity": uniform}


def slerp_latents(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """(L,), (L,) unit -> (steps, L) spherical interpolation from z0 to z1."""
    omega = torch.arccos((z0 * z1).sum().clamp(-1 + 1e-7, 1 - 1e-7))
    t = torch.linspace(0, 1, steps)[:, None]
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


@torch.no_grad()
def atomic_actions(llc, lib, clip_names: list[str], seconds: float = 2.0, seed: int = 0) -> dict:
    """Roll the LLC out from each clip's first frame on that clip's latent; returns reference and LLC body positions.

    Output dict: ``times`` (H,) s, ``reference`` (H, N, B, 3) m, ``agent`` (H, N, B, 3) m, ``alive`` (H, N), ``names``.
    """
    from anyskill.llc.evaluate import clip_latents, rollout_llc
    from anyskill.sim.env import EnvConfig, HumanoidEnv

    ids = torch.tensor([lib.clip_names.index(n) for n in clip_names], device=lib.device)
    env = HumanoidEnv(EnvConfig(num_envs=len(ids), state_init="start", fall_init_prob=0.0, seed=seed), motion_lib=lib)
    env.reset()
    env.start_from_reference(torch.arange(len(ids)), ids, torch.zeros(len(ids), device=lib.device))
    z = clip_latents(llc, lib, ids, env.dt)
    steps = int(round(seconds / env.dt))
    roll = rollout_llc(llc, env, z, steps)
    times = torch.arange(1, steps + 1) * env.dt
    ref = torch.stack([lib.state_at(ids, torch.full((len(ids),), float(t), device=lib.device)).body_pos for t in times])
    return {"times": times.numpy(), "reference": ref.cpu().numpy(), "agent": roll.body_pos.cpu().numpy(),
            "alive": roll.alive.cpu().numpy(), "names": clip_names}


def atomic_gallery(result: dict, model, num_times: int = 4):
    """Reference pose (green) beside the LLC's pose (grey) at a few times, one row per clip (paper Fig. 3)."""
    from anyskill.viz.skeleton import draw_tree, setup_axis

    names, times = result["names"], result["times"]
    picks = np.linspace(len(times) // num_times, len(times) - 1, num_times).astype(int)
    fig = plt.figure(figsize=(2.4 * num_times, 2.5 * len(names)))
    for r, name in enumerate(names):
        for c, k in enumerate(picks):
            ax = fig.add_subplot(len(names), num_times, r * num_times + c + 1, projection="3d")
            ref, agent = result["reference"][k, r], result["agent"][k, r]
            setup_axis(ax, np.array([ref[0, 0], ref[0, 1], 0.0]), half=1.0)
            draw_tree(ax, ref, model.parents, color="#2ca02c", lw=2.0)
            draw_tree(ax, agent, model.parents, color="0.45", lw=2.5)
            title = f"{name.replace('amp_humanoid_', '').replace('authored_', '')}  t={times[k]:.1f}s"
            ax.set_title(title + ("" if result["alive"][k, r] else " (fell)"), fontsize=7)
    fig.suptitle("reference (green) vs low-level controller on the clip's latent (grey)", fontsize=10)
    fig.tight_layout()
    return fig


@torch.no_grad()
def interpolation_poses(llc, lib, clip_a: str, clip_b: str, steps: int = 5, seconds: float = 2.0,
                        seed: int = 0) -> dict:
    """Hold slerp(z_a, z_b, k / (steps - 1)) from the default standing pose; returns final body positions
    (steps, B, 3)."""
    from anyskill.llc.evaluate import clip_latents, rollout_llc
    from anyskill.sim.env import EnvConfig, HumanoidEnv

    ids = torch.tensor([lib.clip_names.index(clip_a), lib.clip_names.index(clip_b)], device=lib.device)
    za, zb = clip_latents(llc, lib, ids)
    z = slerp_latents(za.cpu(), zb.cpu(), steps).to(za)
    env = HumanoidEnv(EnvConfig(num_envs=steps, state_init="default", fall_init_prob=0.0, seed=seed), motion_lib=lib)
    env.reset()
    roll = rollout_llc(llc, env, z, int(round(seconds / env.dt)))
    return {"body_pos": roll.body_pos[-1].cpu().numpy(), "alive": roll.alive[-1].cpu().numpy(), "a": clip_a,
            "b": clip_b}


def interpolation_strip(result: dict, model):
    """Final poses along the latent interpolation from clip a to clip b."""
    from anyskill.viz.skeleton import draw_tree, setup_axis

    pos = result["body_pos"]
    fig = plt.figure(figsize=(2.4 * len(pos), 2.8))
    for k, p in enumerate(pos):
        ax = fig.add_subplot(1, len(pos), k + 1, projection="3d")
        setup_axis(ax, np.array([p[0, 0], p[0, 1], 0.0]), half=1.0)
        draw_tree(ax, p, model.parents)
        ax.set_title(f"α = {k / max(1, len(pos) - 1):.2f}" + ("" if result["alive"][k] else " (fell)"), fontsize=8)
    fig.suptitle(f"z = slerp(z[{result['a']}], z[{result['b']}], α), pose after the hold", fontsize=10)
    fig.tight_layout()
    return fig
