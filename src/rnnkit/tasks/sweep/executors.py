"""Where a sweep's jobs run: one after another in this process, in a pool of worker processes, or
as Ray tasks. Each executor calls :func:`~rnnkit.tasks.sweep.job.run_job` once per job and hands
every row to ``done(row)`` in this process as the job finishes.

Ctrl-C (or SIGTERM, or any exception in ``done``) stops the sweep cleanly: jobs not started are
cancelled, running jobs stop at the end of their current epoch without writing their run
directory (the stop event of the pool, ``ray.cancel`` for Ray), each of them is reported as an
``interrupted`` row, and then the exception goes on to the caller. Finished jobs are kept.

The pool never forks this process (its torch may have started threads, whose locks do not survive
``fork``): its workers come from a fork server, a fresh process that only imports what a job needs
(:mod:`rnnkit.tasks.sweep.preload`), or where there is none (Windows) from ``spawn``; each runs
with one torch thread (:func:`~rnnkit.tasks.sweep.job.init_worker`). A script that calls
:func:`rnnkit.sweep` with more than one worker must guard its top level with
``if __name__ == "__main__":``, as every multiprocessing program does.
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

from ...errors import ConfigError
from .asha import Rungs, local_rungs, ray_rungs
from .job import job_row, one_thread, run_job
from ..._workers import children_ignore_sigint, pool_context

__all__ = ["run_jobs", "session", "usable_cpus", "ray_available"]

Done = Callable[[dict], None]


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the system has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def ray_available() -> bool:
    import importlib.util
    return importlib.util.find_spec("ray") is not None


def run_jobs(specs: Sequence[dict], done: Done, executor: str = "local", workers: int | None = None,
             address: str | None = None, rungs: Rungs | None = None) -> None:
    """Run every job of ``specs`` (see :func:`~rnnkit.tasks.sweep.job.run_job`), calling ``done(row)``
    for each as it finishes; ``workers`` jobs at once (None: :func:`usable_cpus`). ``rungs``: the
    sweep's ASHA record (:mod:`.asha`), shared with the jobs wherever they run and updated in place."""
    if not specs:
        return
    if executor == "ray":
        return _run_ray(specs, done, workers, address, rungs)
    workers = min(workers or usable_cpus(), len(specs))
    if workers == 1:
        return _run_here(specs, done, rungs)
    return _run_pool(specs, done, workers, rungs)


def _run_here(specs: Sequence[dict], done: Done, rungs: Rungs | None = None) -> None:
    """One after another in this process, at one torch thread (as the workers run them)."""
    for k, spec in enumerate(specs):
        with one_thread():
            row = run_job(spec, rungs)
        done(row)
        if row["status"] == "interrupted":
            for rest in specs[k + 1:]:
                done(job_row(rest, "interrupted", "not started: the sweep was stopped"))
            raise KeyboardInterrupt


def _run_pool(specs: Sequence[dict], done: Done, workers: int, rungs: Rungs | None = None) -> None:
    import multiprocessing
    ctx = pool_context(multiprocessing)
    with ExitStack() as stack:
        proxy = None
        if rungs is not None:
            with children_ignore_sigint():  # the manager, too, outlives a Ctrl-C until the workers stopped
                proxy = stack.enter_context(local_rungs(ctx, rungs))
        _run_pool_with(ctx, specs, done, workers, proxy)


def _run_pool_with(ctx, specs: Sequence[dict], done: Done, workers: int, rungs) -> None:
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool
    stop = ctx.Event()
    with children_ignore_sigint():
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(stop, list(sys.path), rungs))
        futures = {pool.submit(run_job, spec): spec for spec in specs}  # the workers start here
    pending = set(futures)

    def collect(f) -> dict:
        try:
            return f.result()
        except BrokenProcessPool as e:  # a worker was killed (out of memory, a signal): its jobs are lost
            return job_row(futures[f], "failed", f"its worker process died ({e}); run the sweep again with --resume")
        except BaseException as e:  # noqa: BLE001 - run_job returns its own failures; this is the transport's
            return job_row(futures[f], "failed", f"could not be run ({type(e).__name__}: {e})")

    try:
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                done(collect(f))
    except BaseException:  # Ctrl-C, SIGTERM, or a failure in done(): stop every job, keep what finished
        stop.set()
        for f in pending:
            f.cancel()
        try:
            for f in pending:
                if f.cancelled():
                    done(job_row(futures[f], "interrupted", "not started: the sweep was stopped"))
                else:
                    done(collect(f))  # running: stops at the end of its epoch
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _init_worker(stop, path: list[str], rungs=None) -> None:
    """Each worker sees the modules this process sees (a checkout's src/ on sys.path included)."""
    sys.path[:] = path + [p for p in sys.path if p not in path]
    from .job import init_worker
    init_worker(stop, rungs)


@contextmanager
def session(executor: str, workers: int | None = None, address: str | None = None) -> Iterator[None]:
    """Ray started or joined once for the block (a local Ray of ``workers`` CPUs when ``address`` is
    None), so that the :func:`run_jobs` calls inside it (an Optuna sweep's batches) share it; nothing
    for the local executor."""
    if executor != "ray":
        yield
        return
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'rnnkit[ray]' (or pip install ray), or use "
                          "--executor local") from None
    if ray.is_initialized():
        yield
        return
    kw: dict = {"include_dashboard": False, "log_to_driver": False, "logging_level": "WARNING"}
    if address is None:  # a local Ray for this sweep: its workers import this rnnkit
        src = str(Path(__file__).resolve().parents[3])
        path = os.pathsep.join([src] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
        kw.update(num_cpus=workers or usable_cpus(), runtime_env={"env_vars": {"PYTHONPATH": path}})
    try:
        ray.init(address=address, **kw)
    except Exception as e:  # noqa: BLE001 - ConnectionError, RuntimeError, ...: Ray's own
        raise ConfigError(f"could not start or join Ray{f' at {address}' if address else ''} "
                          f"({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None
    try:
        yield
    finally:
        ray.shutdown()


def _run_ray(specs: Sequence[dict], done: Done, workers: int | None, address: str | None,
             rungs: Rungs | None = None) -> None:
    with session("ray", workers, address):
        if rungs is None:
            return _run_ray_tasks(specs, done, None)
        with ray_rungs(rungs) as actor:
            _run_ray_tasks(specs, done, actor)


def _run_ray_tasks(specs: Sequence[dict], done: Done, rungs) -> None:
    import ray
    task = ray.remote(num_cpus=1, max_retries=1)(_ray_job)
    refs = {task.remote(spec, rungs): spec for spec in specs}
    pending = list(refs)

    def collect(ref) -> dict:
        try:
            return ray.get(ref)
        except (ray.exceptions.TaskCancelledError, KeyboardInterrupt):
            return job_row(refs[ref], "interrupted", "stopped by Ctrl-C before it finished")
        except Exception as e:  # noqa: BLE001 - a lost node or worker: the job can be run again
            return job_row(refs[ref], "failed", f"its Ray task failed ({type(e).__name__}: "
                                               f"{' '.join(str(e).split())[:200]}); run the sweep again with --resume")
    try:
        while pending:
            finished, pending = ray.wait(pending, num_returns=1)
            for ref in finished:
                done(collect(ref))
    except BaseException:
        for ref in pending:
            ray.cancel(ref)  # a running task gets KeyboardInterrupt: it stops within an epoch
        for ref in pending:
            done(collect(ref))
        raise


def _ray_job(spec: dict, rungs=None) -> dict:
    """run_job in a Ray worker, at one torch thread (Ray sets OMP_NUM_THREADS, torch may not follow);
    ``rungs``: the sweep's ASHA actor, or None."""
    with one_thread():
        return run_job(spec, rungs)
