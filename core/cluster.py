"""Run a batch's jobs as Ray tasks (one bracket per task) on an existing cluster or a local Ray instance.

Each task decodes its frames itself with LUTFuse's loader and writes its output from the worker, so the paths
(input and OUT_DIR) must be visible to every node: a shared file system. A task asks for one GPU when the
cluster has GPUs. Ray is optional (`pip install 'lutfuse[cluster]'`); nothing else imports this module.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from lutfuse.core.batch import Job, Outcome, Task, fuse_job
from lutfuse.core.errors import LUTFuseError
from lutfuse.core.pipeline import FuseSettings

LOCAL_CPUS = 2     # a local instance (no --address) stays small: CI machines have 2 cores


def _ray():
    """The ray module, or a LUTFuseError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise LUTFuseError("--engine ray needs Ray: pip install 'lutfuse[cluster]' (or 'ray>=2.9')") from None
    return ray


def _run_task(task: Task, job: Job, settings: FuseSettings, overwrite: bool) -> Outcome:
    """Body of one Ray task: a worker process keeps its models between tasks (`batch.process_models`)."""
    return task(job, settings, overwrite)


class RayRunner:
    """Callable like `batch.run_local`: (jobs, settings, overwrite=, task=) -> Outcomes in completion order."""

    def __init__(self, address: str | None = None) -> None:
        ray = _ray()
        if not ray.is_initialized():
            try:
                if address:
                    ray.init(address=address, log_to_driver=False)
                else:
                    ray.init(num_cpus=LOCAL_CPUS, include_dashboard=False, log_to_driver=False)
            except Exception as exc:  # noqa: BLE001 - connection refused, version mismatch: one clear line
                where = address or "a local Ray instance"
                raise LUTFuseError(f"cannot start Ray on {where} ({exc})") from None
        self.ray = ray
        self.gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        self.remote = ray.remote(_run_task)

    def __call__(self, jobs: Sequence[Job], settings: FuseSettings, *, overwrite: bool = False,
                 task: Task = fuse_job) -> Iterator[Outcome]:
        ray = self.ray
        remote = self.remote.options(num_cpus=1, num_gpus=self.gpus, max_retries=1)
        limit = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))  # bounded in-flight: flat memory
        pending: list = []
        for job in jobs:
            pending.append(remote.remote(task, job, settings, overwrite))
            if len(pending) >= limit:
                done, pending = ray.wait(pending, num_returns=1)
                yield from ray.get(done)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield from ray.get(done)
