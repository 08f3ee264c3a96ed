"""Data: ingestion, dataset versions, cleaning blocks, format checks and reports."""
