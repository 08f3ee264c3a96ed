"""Long-running jobs: their records, claiming, progress and resumption after a restart."""
