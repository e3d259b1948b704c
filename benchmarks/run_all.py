"""Every benchmark of the project in one go (`make bench`): each prints its own table.

    .venv/bin/python benchmarks/run_all.py [--quick]

Order: training-side speed (bench_train), heads (bench_heads), metrics and search (bench_metrics),
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def run(script: str, *args: str) -> None:
    print(f"\n## {script} {' '.join(args)}".rstrip(), flush=True)
    subprocess.run([sys.executable, str(HERE / script), *args], check=True, cwd=ROOT)


def default_run_seconds() -> float:
    """Wall seconds of `python scripts/train.py loss=arcface` (the `make train` job) into a scratch dir."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "scripts/train.py",
                "loss=arcface",
                f"hydra.run.dir={tmp}",
                "trainer.enable_progress_bar=false",
            ],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - start


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
    if args.quick:
        run("bench_train.py", "--steps", "3", "--epochs", "1")
        run("bench_heads.py", "--classes", "10000", "--repeats", "2")
        run("bench_metrics.py", "--pairs", "100000", "--gallery", "10000", "--probes", "1000")
        return
    run("bench_train.py")
    run("bench_heads.py")
    run("bench_metrics.py")
    print(
        f"\n## make train (train + evaluation after set-up): {default_run_seconds():.1f} s wall (target < 90 s)"
    )


if __name__ == "__main__":
    main()
