"""Automated labeling: typed task specs, labelers (LLM with constrained output, embedding kNN),
the resumable "label" job, and the review queue for items below the confidence threshold."""
