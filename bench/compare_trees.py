"""Run the same benchmarks on two checkouts, one after the other in one run, and print their figures side by side.

    .venv/bin/python bench/compare_trees.py BASE_TREE [--benches store,kafka,...] [--full]

For a refactor: each tree's own bench/bench_<name>.py (the same method; its imports follow its tree's layout) runs
its `--quick` scenarios in a process of its own with that tree first on sys.path, the trees alternating which goes
first from one benchmark to the next, so both see the same machine load. Prints, per benchmark, every numeric cell
of both tables with the ratio new / old, and writes the raw tables to --output (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

NEW = Path(__file__).resolve().parent.parent
BENCHES = ("store", "kafka", "flink", "registry", "profiling", "exporter", "sessions")

_CHILD = """
import json, sys
sys.path[:0] = [sys.argv[1] + "/bench", sys.argv[1]]
import importlib, inspect
module = importlib.import_module("bench_" + sys.argv[2])
options = {"quick": sys.argv[3] == "quick"}
if sys.argv[4] == "no-real-flink" and hasattr(module, "LocalFlink"):
    def _not_started(self):
        raise module.FlinkUnavailable("not started for this comparison (--no-real-flink)")
    module.LocalFlink.start = _not_started
if "progress" in inspect.signature(module.run).parameters:  # (bench_store.run has none)
    options["progress"] = lambda line: print(line, file=sys.stderr, flush=True)
out = module.run(**options)
header, rows = module.table(out)
print("@@TABLE@@" + json.dumps({"header": header, "rows": rows, "seconds": out.get("seconds")}, default=str))
"""


def run_one(tree: Path, bench: str, quick: bool, real_flink: bool) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD, str(tree), bench, "quick" if quick else "full",
                           "real-flink" if real_flink else "no-real-flink"],
                          cwd=tree, env=env, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("@@TABLE@@"):
            table = json.loads(line.removeprefix("@@TABLE@@"))
            table["wall"] = time.perf_counter() - started
            return table
    raise RuntimeError(f"bench_{bench} in {tree} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")


def number(cell: object) -> float | None:
    text = str(cell).strip().removeprefix("~").removesuffix("*").replace(",", "")
    try:
        return float(text)
    except ValueError:
        return None


def side_by_side(old: dict, new: dict) -> list[list[str]]:
    """Rows (row key, column, old, new, new / old) for every cell numeric in both tables."""
    out = []
    columns = [h for h in new["header"] if h in old["header"]]
    for old_row, new_row in zip(old["rows"], new["rows"], strict=False):
        old_cells = dict(zip(old["header"], old_row, strict=True))
        new_cells = dict(zip(new["header"], new_row, strict=True))
        key = " | ".join(str(new_cells[h]) for h in columns if number(new_cells[h]) is None and new_cells[h] != "")
        for column in columns:
            a, b = number(old_cells[column]), number(new_cells[column])
            if a is None or b is None:
                continue
            ratio = f"{b / a:.2f}" if a else ("1.00" if b == a else "n/a")
            out.append([key, column, str(old_cells[column]), str(new_cells[column]), ratio])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="the other checkout (e.g. a `git worktree add` of the old commit)")
    parser.add_argument("--benches", default=",".join(BENCHES))
    parser.add_argument("--full", action="store_true", help="the full scenarios rather than --quick")
    parser.add_argument("--no-real-flink", action="store_true",
                        help="bench_flink without its row on a real local cluster (replayed answers only): a cluster "
                             "may not start within its timeout on a busy machine")
    parser.add_argument("--output", type=Path, default=Path("/tmp/pipewatch-compare-trees.json"))
    args = parser.parse_args()
    results: dict[str, dict] = {}
    for index, bench in enumerate(args.benches.split(",")):
        order = [("old", args.base.resolve()), ("new", NEW)]
        if index % 2:
            order.reverse()
        results[bench] = {}
        for side, tree in order:
            print(f"bench_{bench} on {side} ({tree}) ...", flush=True)
            results[bench][side] = run_one(tree, bench, quick=not args.full, real_flink=not args.no_real_flink)
            print(f"  {results[bench][side]['wall']:.0f} s", flush=True)
        args.output.write_text(json.dumps(results, indent=1))
        print(f"\n## {bench} (old ran {'first' if order[0][0] == 'old' else 'second'})")
        for row in side_by_side(results[bench]["old"], results[bench]["new"]):
            print("  ".join(row))
        print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
