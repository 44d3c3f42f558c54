"""Figures: skeletons and animations, dataset overviews, latent-space maps, learning curves, filmstrips."""
