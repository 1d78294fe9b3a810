"""Evaluation: golden sets, metrics with intervals, slices, threshold tuning, comparison of two
checkpoints, the release gate, and the HTML report."""
