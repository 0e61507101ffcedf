"""Ranking: LightGBM (binary or lambdarank, chosen on validation), a logistic fallback, ONNX."""
