"""Serving a fitted model: recommendations, similar items and users, fold-in, model files.

The public functions are re-exported by ``fastmf`` (and by ``fastmf.recommend`` and
``fastmf.serialize``); import them from there.
"""
