"""Metrics and visualisations of a model's output."""
