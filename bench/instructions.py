#!/usr/bin/env python3
"""Per-request instruction counts of each filter's logic: a performance regression signal that
does not depend on wall time.

Builds bench/instructions (breakwater-instructions) in release mode, runs every scenario under
`valgrind --tool=callgrind` with N1 and N2 requests, and takes

    instructions per request = (Ir(N2) - Ir(N1)) / (N2 - N1)

which cancels start-up and configuration. Callgrind counts the instructions the program
executes, not time, so the figures are the same on a loaded CI runner as on an idle laptop.

    python3 bench/instructions.py             # compare with bench/instructions.json
    python3 bench/instructions.py --update    # write bench/instructions.json

Comparing exits with 1 if any scenario needs more than THRESHOLD more instructions per request
than bench/instructions.json says.

Why 3 %: for the same binary and inputs the counts are exactly repeatable (the driver has no
randomness, no clock and no hash map with a random seed; two runs give identical totals), so a
difference comes from the code, the toolchain or the machine, never from load. What the machine
still moves is small: a longer checkout path or a 3 KB larger environment changed per-request
counts by at most 0.2 % (the environment is cleared to a minimum here anyway). 3 % is well above
that, yet small enough to catch real regressions: for the log scenarios one more allocation per
record field, or one more pass over each logged value; for `breaker` (about 7 400 instructions)
two more allocations per request. Counts depend on rustc (inlining, LLVM version) and somewhat
on the C library and the CPU (glibc picks memcpy/strlen variants by CPU features): after a
toolchain or runner-image change, check the new figures and run with --update.

The binary is built with the workspace's release profile (opt-level 3, LTO: the Wasm modules'
code generation, for x86-64), keeping the symbol table so that callgrind_annotate can name
functions: `--keep DIR` keeps the callgrind files. CARGO_PROFILE_RELEASE_OPT_LEVEL=z compares
another opt-level against the stored counts.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
BASELINE = ROOT / "bench" / "instructions.json"
PACKAGE = "breakwater-instructions"
BINARY = ROOT / "target" / "release" / PACKAGE

N1 = 1000
N2 = 3000
THRESHOLD = 0.03


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, **kwargs)


def build() -> None:
    sys.stdout.flush()
    # The workspace's release profile (opt-level 3, LTO, as the Wasm modules) but with the
    # symbol table kept, so callgrind_annotate can name functions. Stripping does not change
    # the code, only what the counts can be attributed to.
    env = dict(os.environ, CARGO_PROFILE_RELEASE_STRIP="none")
    run(["cargo", "build", "--release", "--locked", "-p", PACKAGE], cwd=ROOT, env=env)


def rustc_version() -> str:
    return run(["rustc", "--version"], capture_output=True, cwd=ROOT).stdout.strip()


def valgrind_version() -> str:
    return run(["valgrind", "--version"], capture_output=True).stdout.strip()


def scenarios() -> list[str]:
    out = run([str(BINARY), "--list"], capture_output=True).stdout
    return out.split()


def total_ir(out_file: pathlib.Path) -> int:
    """The Ir total of a callgrind output file (`totals:`, or else `summary:`)."""
    found: dict[str, int] = {}
    for line in out_file.read_text().splitlines():
        match = re.match(r"^(totals|summary):\s+(\d+)", line)
        if match:
            found[match.group(1)] = int(match.group(2))
    if "totals" in found:
        return found["totals"]
    if "summary" in found:
        return found["summary"]
    raise RuntimeError(f"{out_file}: no totals: or summary: line")


def measure(scenario: str, requests: int, out_dir: pathlib.Path) -> int:
    out_file = out_dir / f"callgrind.{scenario}.{requests}.out"
    # A minimal environment: its size moves the initial stack, and with it the alignment of
    # stack buffers that memcpy and friends handle in a few more or fewer instructions.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    run(
        [
            "valgrind",
            "--tool=callgrind",
            "--quiet",
            f"--callgrind-out-file={out_file}",
            str(BINARY),
            scenario,
            str(requests),
        ],
        env=env,
        capture_output=True,
    )
    return total_ir(out_file)


def per_request(scenario: str, out_dir: pathlib.Path) -> float:
    ir1 = measure(scenario, N1, out_dir)
    ir2 = measure(scenario, N2, out_dir)
    return round((ir2 - ir1) / (N2 - N1), 1)


def measure_all(names: list[str], out_dir: pathlib.Path, jobs: int) -> dict[str, float]:
    # Counts do not depend on what else runs, so the scenarios run side by side.
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {name: pool.submit(per_request, name, out_dir) for name in names}
        return {name: futures[name].result() for name in names}


def table(
    current: dict[str, float], baseline: dict[str, float], threshold: float, every: bool
) -> list[str]:
    """Prints the comparison (`every`: all scenarios were measured); returns the scenarios over
    the threshold."""
    regressions = []
    print(f"{'scenario':16} {'baseline':>12} {'now':>12} {'change':>9}")
    for name, now in current.items():
        before = baseline.get(name)
        if before is None:
            print(f"{name:16} {'-':>12} {now:12,.1f} {'new':>9}")
            continue
        change = (now - before) / before if before else 0.0
        mark = ""
        if change > threshold:
            mark = "  REGRESSION"
            regressions.append(name)
        elif change < -threshold:
            mark = "  faster: consider --update"
        print(f"{name:16} {before:12,.1f} {now:12,.1f} {change:+9.2%}{mark}")
    for name in baseline:
        if every and name not in current:
            print(f"{name:16} {baseline[name]:12,.1f} {'-':>12} {'gone':>9}")
    return regressions


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Per-request instruction counts of each filter's logic under callgrind."
    )
    parser.add_argument("--update", action="store_true", help="measure every scenario and write the baseline file")
    parser.add_argument(
        "--threshold",
        type=float,
        default=THRESHOLD,
        help=f"largest accepted growth, as a fraction (default {THRESHOLD})",
    )
    parser.add_argument(
        "--scenario", action="append", help="only this scenario (repeatable; not with --update)"
    )
    parser.add_argument(
        "--keep",
        type=pathlib.Path,
        help="keep the callgrind output files in this directory (for callgrind_annotate)",
    )
    parser.add_argument(
        "--baseline",
        type=pathlib.Path,
        default=BASELINE,
        help=f"the baseline file (default {BASELINE.relative_to(ROOT)})",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the comparison as JSON (for make bench's results)"
    )
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="scenarios measured at once"
    )
    args = parser.parse_args()
    if args.update and args.scenario:
        parser.error("--update measures every scenario")
    if shutil.which("valgrind") is None:
        print("valgrind is needed (apt-get install valgrind)", file=sys.stderr)
        return 2

    started = time.monotonic()
    build()
    names = scenarios()
    if args.scenario:
        unknown = sorted(set(args.scenario) - set(names))
        if unknown:
            parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(names)}")
        names = [n for n in names if n in args.scenario]

    rustc = rustc_version()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        current = measure_all(names, args.keep, args.jobs)
    else:
        with tempfile.TemporaryDirectory(prefix="breakwater-callgrind-") as tmp:
            current = measure_all(names, pathlib.Path(tmp), args.jobs)
    elapsed = time.monotonic() - started

    if args.update:
        document = {
            "instructions_per_request": current,
            "requests": [N1, N2],
            "rustc": rustc,
            "valgrind": valgrind_version(),
            "date": datetime.date.today().isoformat(),
        }
        args.baseline.write_text(json.dumps(document, indent=2) + "\n")
        print(f"{'scenario':16} {'instructions/request':>21}")
        for name, count in current.items():
            print(f"{name:16} {count:21,.1f}")
        print(f"wrote {args.baseline} ({rustc}; {elapsed:.0f} s)")
        return 0

    if not args.baseline.exists():
        print(f"no {args.baseline}: run with --update first", file=sys.stderr)
        return 2
    baseline_doc = json.loads(args.baseline.read_text())
    baseline = baseline_doc.get("instructions_per_request", {})
    if args.json:
        print(json.dumps({
            "threshold": args.threshold, "rustc": rustc, "baseline_rustc": baseline_doc.get("rustc"),
            "scenarios": {
                name: {"measured": now, "stored": baseline.get(name),
                       "change": now / baseline[name] - 1 if baseline.get(name) else None}
                for name, now in current.items()
            },
        }))  # fmt: skip
        return 0
    regressions = table(current, baseline, args.threshold, every=not args.scenario)
    print(f"({elapsed:.0f} s; threshold +{args.threshold:.0%})")
    toolchain_changed = baseline_doc.get("rustc") != rustc
    if toolchain_changed:
        print(
            f"note: the baseline was measured with {baseline_doc.get('rustc')}, this run with "
            f"{rustc}; counts differ between toolchains -- run with --update after checking",
            file=sys.stderr,
        )
    if regressions:
        print(
            f"{len(regressions)} scenario(s) need more than {args.threshold:.0%} more "
            f"instructions per request: {', '.join(regressions)}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
