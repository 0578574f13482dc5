"""Evaluation library: feature extractors, Fréchet statistics, metrics, benchmark protocols.

A plain library (no Prefect, Ray or MLflow imports): callable from a notebook.
"""
