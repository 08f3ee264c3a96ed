"""Which function runs which kind of job."""

from rixin.data.clean import run_clean
from rixin.evals.job import run_eval
from rixin.label.job import run_label
from rixin.train.job import run_fine_tune

HANDLERS = {"clean": run_clean, "eval": run_eval, "fine_tune": run_fine_tune, "label": run_label}
