"""Every benchmark of the project in one go (`make bench`): each prints its own table.

    .venv/bin/python benchmarks/run_all.py [--quick]

Order: training-side speed (bench_train), heads (bench_heads), metrics and search (bench_metrics),
evaluation at scale and memory (bench_scale), the synthfaces generator (bench_synthfaces),
then the wall time of the default `make train` run (train + evaluation, after set-up).
Figures are recorded in docs/benchmarks.md with the date and machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import summary

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def run(script: str, summary_file: str, *args: str) -> None:
    print(f"\n## {script} {' '.join(args)}".rstrip(), flush=True)
    command = [sys.executable, str(HERE / script), *args, "--summary", summary_file]
    subprocess.run(command, check=True, cwd=ROOT)


def default_run() -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of `python scripts/train.py loss=arcface` (the `make train` job)."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        child = subprocess.Popen(
            [
                sys.executable,
                "scripts/train.py",
                "loss=arcface",
                f"hydra.run.dir={tmp}",
                "trainer.enable_progress_bar=false",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(child.pid, 0)  # this child's own resource usage
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"the default run failed (exit {child.returncode})")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes, for a smoke test of the scripts"
    )
    args = parser.parse_args()
    print(
        f"# marginface benchmarks, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        file = str(Path(tmp) / "summary.json")
        if args.quick:
            run(
                "bench_train.py",
                file,
                "--steps",
                "3",
                "--epochs",
                "1",
                "--rounds",
                "1",
                "--no-compile",
            )
            run("bench_heads.py", file, "--classes", "10000", "--repeats", "2")
            run(
                "bench_metrics.py",
                file,
                "--pairs",
                "100000",
                "--gallery",
                "10000",
                "--probes",
                "1000",
            )
            run("bench_scale.py", file, "--images", "256", "--memory-images", "2000")
            run("bench_synthfaces.py", file, "--identities", "100", "--rounds", "1")
        else:
            run("bench_train.py", file)
            run("bench_heads.py", file, "--threads", "1")  # ratios are noise with 2 threads here
            run("bench_metrics.py", file)
            run("bench_scale.py", file)
            run("bench_synthfaces.py", file)
            seconds, rss = default_run()
            summary.add(
                file,
                [
                    (
                        "`make train` (train + evaluation, after set-up)",
                        f"{seconds:.1f} s",
                        "< 90 s",
                        seconds < 90,
                    ),
                    ("peak RSS of the `make train` process", f"{rss:,.0f} MiB", "reported", None),
                ],
            )
        print(
            f"\n## Summary ({time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f})\n"
        )
        print(summary.table(file))


if __name__ == "__main__":
    main()
