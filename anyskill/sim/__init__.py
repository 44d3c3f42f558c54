"""Simulation: the humanoid model, physics backends (MuJoCo CPU, MuJoCo Warp GPU), the environment, rendering."""
