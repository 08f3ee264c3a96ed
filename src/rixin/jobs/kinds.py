"""Which function runs which kind of job."""

from rixin.data.clean import run_clean

HANDLERS = {"clean": run_clean}
