"""Model registry (MLflow) and bundle resolution."""
