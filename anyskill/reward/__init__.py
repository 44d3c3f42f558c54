"""Reward of the high-level policy: CLIP model, Eq. 3 and variants, early termination, state projection."""
