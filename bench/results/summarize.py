#!/usr/bin/env python3
"""summarize.py - the target checks of several kvbench_lib reports side by side.

Usage: summarize.py full-run-*.txt
Prints a Markdown table: one row per target, one column per report, and the
median over the reports (a target's verdict over many noisy runs).
       summarize.py --table full-run-N.txt
Prints that report's results as a compact Markdown table, one row per
configuration.
Memory is left out: it does not vary between runs (see the reports).
"""
import re
import statistics
import sys

LINE = re.compile(r"^  (\S.*?)\s+(\d+\.\d+) \(target >= (\d+\.\d+)\)")
INFO = re.compile(r"^\s+(\d+\.\d+) \((CPU-normalised|per CPU-second), for information\)")


def targets(path):
    out = {}
    last = None
    in_targets = False
    for line in open(path):
        if line.startswith("Targets"):
            in_targets = True
            continue
        if in_targets:
            m = LINE.match(line)
            if m and not m.group(1).startswith("memory"):
                last = m.group(1)
                out[last] = (float(m.group(2)), float(m.group(3)))
            i = INFO.match(line)
            if i and last:
                # Beside a target, from the same runs: CPU time taken by
                # other processes corrected for (see bench/README.md).
                out[f"{last} ({i.group(2)})"] = (float(i.group(1)), out[last][1])
    return out


ROW = re.compile(r"^(\S+)?\s+(\d+)?\s+(uniform|zipf)?\s+(\d+)?\s+(libkv|lfht|rwlock|lfht-memb)\s+"
                 r"(\d+\.\d+)\s+(\d+\.\d+)\.\.(\d+\.\d+)\s+(?:(\d+)%\s+(\d+\.\d+)\s+)?(\d+\.\d+)")


def table(path):
    rows = []
    cur = None
    for line in open(path):
        m = ROW.match(line)
        if not m:
            continue
        if m.group(1):
            cur = {"w": m.group(1), "k": m.group(2), "d": m.group(3), "t": m.group(4)}
            rows.append(cur)
        cur[m.group(5)] = (float(m.group(6)), m.group(9))
    print("| workload | keys | dist | thr | libkv Mops/s | lfht Mops/s | rwlock Mops/s "
          "| libkv / lfht | cpu (libkv, lfht) |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        kv, lf, rw = r.get("libkv"), r.get("lfht"), r.get("rwlock")
        ratio = f"{kv[0] / lf[0]:.2f}x" if kv and lf and lf[0] else ""
        cpu = f"{kv[1]}%, {lf[1]}%" if kv and lf and kv[1] else ""
        def f(x):
            return f"{x[0]:.3f}" if x else ""
        print(f"| {r['w']} | {r['k']} | {r['d']} | {r['t']} | {f(kv)} | {f(lf)} | {f(rw)} "
              f"| {ratio} | {cpu} |")


def main(paths):
    if paths and paths[0] == "--table":
        table(paths[1])
        return
    runs = [targets(p) for p in paths]
    names = []
    for r in runs:
        for n in r:
            if n not in names:
                names.append(n)
    head = ["target", "want"] + [p.split("/")[-1].replace(".txt", "") for p in paths]
    head += ["median", "verdict"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for n in names:
        vals = [r[n][0] for r in runs if n in r]
        want = next(r[n][1] for r in runs if n in r)
        cells = [f"{r[n][0]:.2f}" if n in r else "" for r in runs]
        med = statistics.median(vals)
        verdict = "met" if med >= want else f"missed by {100 * (1 - med / want):.0f}%"
        print(f"| {n} | {want:.2f} | " + " | ".join(cells) + f" | {med:.2f} | {verdict} |")


if __name__ == "__main__":
    main(sys.argv[1:])
