"""The shared compute utility: scheduling, quotas, metering, rate limits (issue 12)."""
