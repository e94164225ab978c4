"""Many jobs on Ray: `load_jobs` reads a folder or a JSONL file, `run_batch` runs the jobs on
long-lived workers that keep their models loaded, each job in its own run directory."""

from dreamjourney.batch.jobs import Job, load_jobs
from dreamjourney.batch.runner import BatchCallback, run_batch
from dreamjourney.batch.summary import BatchSummary, JobRecord

__all__ = ["BatchCallback", "BatchSummary", "Job", "JobRecord", "load_jobs", "run_batch"]
