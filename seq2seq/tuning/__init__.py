"""Hyperparameter search with KerasTuner."""
