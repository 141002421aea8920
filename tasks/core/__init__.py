"""Shared core of every stage: params (the one parser), errors, atomic outputs, file hashing,
MLflow tracking, the dataset catalog and the thin stage runner. Imports no other tasks package."""
