"""Rebuild the bundled data (``anyskill build-data``): convert, retarget and author every clip, write the manifest.

Categories follow the paper's training-stabilisation idea (§4.1): three primary groups by action scale
(``in-place``, ``locomotion``, ``combined`` = in-place and locomotion in one clip) and secondary tags by involved
limbs / style (``attack``, ``jump``, ``dance``, ``acrobatics``, ``gesture``). Sampling weights give each primary group
the same total probability, so the rarer groups are drawn more often than their clip count alone would allow.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import yaml

from anyskill.data import MANIFEST, MOTIONS_DIR
from anyskill.motion import load_motion
from anyskill.motion.quality import drop_repeated_frames, ground_align, lift_sunken_feet

CMU_ACK = ("The data used in this project was obtained from mocap.cs.cmu.edu. The database was created with funding "
           "from NSF EIA-0196217.")

# name -> (primary category, tags, description)
POSELIB_CLIPS: dict[str, tuple[str, list[str], str]] = {
    "amp_humanoid_walk": ("locomotion", [], "walk forward"),
    "amp_humanoid_run": ("locomotion", [], "run forward"),
    "amp_humanoid_hop": ("locomotion", ["jump"], "hop forward on one leg"),
    "amp_humanoid_dance": ("in-place", ["dance"], "dance with arm swings and turns"),
    "amp_humanoid_cartwheel": ("combined", ["acrobatics"], "do a cartwheel"),
    "amp_humanoid_backflip": ("in-place", ["acrobatics", "jump"], "do a backflip"),
}
BVH_CLIPS: dict[str, tuple[str, list[str], str]] = {
    "cmu_131_01": ("combined", [], "start walking, walk forward and stop (CMU subject 131)"),
    "cmu_131_02": ("combined", [], "start walking, walk forward and stop (CMU subject 131)"),
}
AUTHORED_TAGS = {"punch": ["attack"], "kick": ["attack"], "jumping_jack": ["jump"]}


def _entry(file: str, category: str, tags: list[str], description: str, source: str, licence: str) -> dict:
    return {
        "file": file,
        "weight": 1.0,
        "category": category,
        "tags": tags,
        "description": description,
        "source": source,
        "licence": licence,
    }


def build_bundled_data(shared: str | Path = "../shared/data", verbose: bool = False) -> list[dict]:
    """Write ``anyskill/data/motions/*.npz`` and ``motions.yaml``; returns the manifest entries."""
    shared = Path(shared)
    MOTIONS_DIR.mkdir(parents=True, exist_ok=True)
    entries: list[dict] = []

    for name, (cat, tags, desc) in POSELIB_CLIPS.items():
        clip = drop_repeated_frames(load_motion(shared / "motions" / f"{name}.npy"))
        ground_align(clip)
        clip.dof_pos, fixes = lift_sunken_feet(clip.model, clip.root_pos, clip.root_rot, clip.dof_pos, clip.fps)
        clip.meta["foot_fix"] = fixes
        clip.meta.update(description=desc, licence="BSD-3-Clause (NVIDIA)", acknowledgement=CMU_ACK)
        clip.save(MOTIONS_DIR / f"{name}.npz")
        entries.append(_entry(f"motions/{name}.npz", cat, tags, desc, "CMU mocap via NVIDIA IsaacGymEnvs (poselib)",
                              "BSD-3-Clause"))
        if verbose:
            print(f"poselib  {name}: {clip.meta['conversion']}")
    for name in ("LICENSE-BSD-3.txt", "ACKNOWLEDGEMENT.txt"):
        shutil.copyfile(shared / "motions" / name, MOTIONS_DIR / name)
    (MOTIONS_DIR.parent / "bvh").mkdir(exist_ok=True)
    shutil.copyfile(shared / "bvh" / "README.md", MOTIONS_DIR.parent / "bvh" / "README.md")

    for name, (cat, tags, desc) in BVH_CLIPS.items():
        shutil.copyfile(shared / "bvh" / f"{name}.bvh", MOTIONS_DIR.parent / "bvh" / f"{name}.bvh")
        clip = load_motion(shared / "bvh" / f"{name}.bvh")
        clip.meta.update(description=desc, acknowledgement=CMU_ACK)
        clip.save(MOTIONS_DIR / f"{name}.npz")
        entries.append(_entry(f"motions/{name}.npz", cat, tags, desc, "CMU mocap BVH, retargeted by this project",
                              "CMU terms (acknowledgement required)"))
        if verbose:
            print(f"bvh      {name}: {clip.meta.get('retarget')}")

    from anyskill.motion.authored_clips import authored_clips

    for clip in authored_clips():
        desc = clip.meta.get("description", clip.name)
        clip.save(MOTIONS_DIR / f"authored_{clip.name}.npz")
        tags = ["gesture", *AUTHORED_TAGS.get(clip.name, [])]
        entries.append(_entry(f"motions/authored_{clip.name}.npz", "in-place", tags,
                              desc, "authored by this project (anyskill.motion.author)", "BSD-3-Clause (this project)"))
        if verbose:
            print(f"authored {clip.name}: {clip.num_frames} frames")

    counts = Counter(e["category"] for e in entries)
    for e in entries:
        e["weight"] = round(1.0 / (len(counts) * counts[e["category"]]), 6)
    MANIFEST.write_text(
        "# Bundled motion clips. file: relative to this folder; weight: sampling weight (renormalised);\n"
        "# category: primary group (in-place | locomotion | combined); tags: secondary groups.\n"
        "# Regenerate with `anyskill build-data`.\n" + yaml.safe_dump({"motions": entries}, sort_keys=False, width=120)
    )
    return entries
