"""Evaluation: metrics of predictions and top-k lists, diagnosis of a training run, search."""
