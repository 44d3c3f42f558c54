"""Simulation: physics backends (MuJoCo CPU, MuJoCo Warp GPU), the humanoid environment and its terms, rendering."""
