"""rixin: self-hosted model-as-a-service. Your data, your model, new every day."""

__version__ = "0.1.0"
