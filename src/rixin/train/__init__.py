"""Training: fine-tuning recipes (supervised, DPO, continued pretraining) on Ray Train."""
