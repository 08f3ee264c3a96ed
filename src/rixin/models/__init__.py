"""The model registry: bundled base models, user-added models (later: fine-tuned ones)."""
