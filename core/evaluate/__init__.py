"""Evaluation: eval sets, metrics with signatures, runs as jobs, reports and paired comparisons."""
