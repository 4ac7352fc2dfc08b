"""Runs a grid of experiments as submitit jobs, on a SLURM cluster or on this machine; each job clones this
repository's last commit, runs `dvc exp run` with its -S values and pushes the experiment to the git remote
(ednas_core/sweep.py has the details). Run it at the repository's root:

    MLFLOW_TRACKING_URI=http://mlflow-host:5000 python -m tools.sweep --executor slurm \\
        -S 'runtime.seed=1,2' -S 'digits.search.strategy=ednas,random' --partition gpu --time-min 720

then `git fetch origin && dvc exp pull origin <names>` and `dvc exp show`. Exit status: 0 when every job
succeeded (or with --no-wait / --dry-run, once submitted / checked), 1 when a job failed, 2 on bad input (one line,
nothing submitted)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ednas_core.sweep import (CLUSTERS, Resources, SweepError, follow_up, import_submitit, plan_sweep, pull_command,
                              submit, wait)


def at_least(minimum: float, kind: type = int):
    """An argparse type: a number no smaller than `minimum`."""
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is below {minimum}")
        return value
    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executor", required=True, choices=CLUSTERS,
                        help="slurm: sbatch a job array; local: processes on this machine")
    parser.add_argument("-S", "--set-param", dest="specs", action="append", default=[], metavar="KEY=V1,V2",
                        help="DVC's -S syntax: key=value, key=v1,v2 or key=range(start,stop[,step]); the grid is the "
                             "product of all -S")
    parser.add_argument("--name-prefix", default="sweep",
                        help="experiment names: <prefix>-<swept values> (default: sweep)")
    parser.add_argument("--gpus-per-job", type=at_least(0), default=None,
                        help="default: 1 on slurm, 0 locally (local jobs see that many GPUs: 0 hides them)")
    parser.add_argument("--cpus-per-job", type=at_least(1), default=None,
                        help="SLURM cpus-per-task; also the jobs' thread count (OMP_NUM_THREADS)")
    parser.add_argument("--time-min", type=at_least(1), default=720,
                        help="time limit of each job, minutes (default: 720)")
    parser.add_argument("--partition", help="SLURM partition")
    parser.add_argument("--account", help="SLURM account")
    parser.add_argument("--mem-gb", type=at_least(0.1, float), help="memory of each job")
    parser.add_argument("--max-requeue", type=at_least(0), default=3,
                        help="requeues after a timeout (after a preemption: always; default: 3)")
    parser.add_argument("--max-parallel", type=at_least(1), help="SLURM: jobs of the array running at once")
    parser.add_argument("--git-remote", default="origin",
                        help="git remote (name or URL) the experiments go to (default: origin)")
    parser.add_argument("--dvc-remote",
                        help="DVC remote of .dvc/config for the experiments' cached outputs (default: none: only "
                             "params, metrics and dvc.lock go to the git remote)")
    parser.add_argument("--workdir", type=Path,
                        help="folder every node sees, for the clones and submitit's logs (default: "
                             "<repository>-sweeps beside the repository)")
    parser.add_argument("--dry-run", action="store_true", help="check everything and list the experiments; submit "
                                                               "nothing")
    parser.add_argument("--no-wait", action="store_true", help="print the job ids and how to follow them, and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    resources = Resources(time_min=args.time_min, gpus=args.gpus_per_job if args.gpus_per_job is not None else
                          int(args.executor == "slurm"), cpus=args.cpus_per_job, mem_gb=args.mem_gb,
                          partition=args.partition, account=args.account, max_requeue=args.max_requeue,
                          max_parallel=args.max_parallel)
    try:
        if not args.dry_run:
            import_submitit()
        plan = plan_sweep(Path.cwd(), args.specs, prefix=args.name_prefix, cluster=args.executor,
                          workdir=args.workdir, git_remote=args.git_remote, dvc_remote=args.dvc_remote,
                          tracking_uri=os.environ.get("MLFLOW_TRACKING_URI") or None, threads=args.cpus_per_job)
        for warning in plan.warnings:
            print(f"sweep: warning: {warning}", file=sys.stderr)
        if args.dry_run:
            print(f"sweep: {len(plan.jobs)} experiments from commit {plan.commit[:8]}, clones in {plan.workdir} "
                  "(dry run: nothing submitted)")
            for job in plan.jobs:
                print(f"  {job.name}: {' '.join(job.command())}")
            return 0
        handles = submit(plan, args.executor, resources)
    except SweepError as err:
        print(f"sweep: error: {err}", file=sys.stderr)
        return 2
    print(f"sweep: submitted {len(handles)} job{'s' if len(handles) != 1 else ''} ({args.executor}) from commit "
          f"{plan.commit[:8]}; clones and logs in {plan.workdir}", flush=True)
    for job, handle in zip(plan.jobs, handles):
        print(f"  {job.name}  job {handle.job_id}", flush=True)
    if args.no_wait:
        print("follow them with:\n" + "\n".join(f"  {line}" for line in follow_up(plan, handles, args.executor)))
        return 0
    failed = 0
    try:
        for outcome in wait(plan, handles, poll_s=10.0 if args.executor == "slurm" else 2.0):
            print(outcome.line(), flush=True)
            failed += not outcome.ok
    except KeyboardInterrupt:
        print("\nsweep: stopped waiting; the jobs go on. Follow them with:\n"
              + "\n".join(f"  {line}" for line in follow_up(plan, handles, args.executor)), file=sys.stderr)
        return 130
    print(f"sweep: {len(handles) - failed} of {len(handles)} experiments succeeded; look at them with: "
          f"{pull_command(plan)} && dvc exp show")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
