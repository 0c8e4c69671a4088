#!/usr/bin/python3
"""Runs an amtbench command several times and prints each figure's median and spread as a
Markdown table (the form BENCHMARKS.md uses):

    perf/bench_median.py -n 3 -- build/perf/amtbench --section handshake

--json is added to the command. Spread is (max - min) / median, in percent; the raw runs are
kept with --raw FILE (JSON lines) for later inspection."""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time


def idle_percent(seconds: float = 2.0) -> float:
    """Share of all CPUs idle over a short sample (/proc/stat): other users' load right now."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[3] + v[4], sum(v)  # idle + iowait, total
    i0, t0 = sample()
    time.sleep(seconds)
    i1, t1 = sample()
    return 100.0 * (i1 - i0) / max(1, t1 - t0)


def wait_for_quiet(min_idle: float, max_wait: float) -> float:
    """Waits (at most max_wait seconds) until at least min_idle % of the CPUs are idle."""
    deadline = time.time() + max_wait
    idle = idle_percent()
    while idle < min_idle and time.time() < deadline:
        idle = idle_percent()
    return idle


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--runs", type=int, default=3)
    p.add_argument("--raw", help="append every run's JSON to this file")
    p.add_argument("--min-idle", type=float, default=0.0,
                   help="before each run, wait until this %% of the CPUs is idle (2 s sample)")
    p.add_argument("--max-wait", type=float, default=120.0, help="seconds to wait at most")
    p.add_argument("--from", dest="sources", nargs="+",
                   help="summarise the runs saved with --raw in these files instead of running")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- amtbench ARGS...")
    args = p.parse_args()
    cmd = [c for c in args.command if c != "--"]
    runs = []
    if args.sources:
        for path in args.sources:
            with open(path) as f:
                runs += [json.loads(line) for line in f if line.strip()]
        cmd = runs[0]["command"].split() if runs else cmd
        args.runs = len(runs)
    elif not cmd:
        p.error("give the amtbench command after --")
    for i in range(0 if args.sources else args.runs):
        idle = wait_for_quiet(args.min_idle, args.max_wait) if args.min_idle > 0 else \
            idle_percent()
        load = os.getloadavg()[0]
        out = subprocess.run(cmd + ["--json"], check=True, capture_output=True, text=True).stdout
        doc = json.loads(out)
        doc["loadavg_1min_before"] = load
        doc["idle_percent_before"] = idle
        runs.append(doc)
        if args.raw:
            with open(args.raw, "a") as f:
                f.write(json.dumps(doc) + "\n")
        print(f"run {i + 1}/{args.runs} done (before it: load average {load:.2f}, "
              f"{idle:.0f} % idle)", file=sys.stderr)
    order, values, units = [], {}, {}
    for doc in runs:
        for r in doc["results"]:
            key = (r["section"], r["name"])
            if key not in values:
                order.append(key)
                values[key] = []
                units[key] = r["unit"]
            if r["value"] is not None and math.isfinite(r["value"]):
                values[key].append(r["value"])
    print(f"`{' '.join(cmd)}` — {args.runs} runs; CPU idle just before each: "
          + ", ".join(f"{d['idle_percent_before']:.0f} %" for d in runs)
          + "; 1-min load average: "
          + ", ".join(f"{d['loadavg_1min_before']:.2f}" for d in runs))
    print()
    print("| section | figure | median | min – max | spread | unit |")
    print("|---|---|---:|---:|---:|---|")
    for key in order:
        v = values[key]
        if not v:
            print(f"| {key[0]} | {key[1]} | – | – | – | {units[key]} |")
            continue
        med = statistics.median(v)
        spread = (max(v) - min(v)) / med * 100 if med else 0.0
        print(f"| {key[0]} | {key[1]} | {med:.4g} | {min(v):.4g} – {max(v):.4g} | "
              f"{spread:.0f} % | {units[key]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
