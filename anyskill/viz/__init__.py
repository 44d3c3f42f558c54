"""Figures and result files: skeletons and animations, dataset overviews, latent-space maps, learning curves,
filmstrips, LLC evaluations; the playground; ``ship_llc`` (``anyskill ship-llc``: a trained controller's results,
figures and model card); ``anchor_study`` (``anyskill anchor-study``: free vs anchored latent action over σ)."""
