"""Orchestration: Prefect flows and tasks, Ray actors, MLflow logging (the only package that
imports Prefect, Ray or MLflow)."""
