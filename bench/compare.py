"""Two checkouts' `make bench` rows against each other: is a change slower anywhere?

    .venv/bin/python bench/compare.py OLD_TREE NEW_TREE [--runs 4] [-- bench.py args]

Runs ``bench/bench.py`` of each tree in turn, ``--runs`` times each, alternating which goes
first (ABBA...), so that drifting machine load hits both alike; each run is a fresh process
importing its own tree's code. For every row it prints the best time of each tree and the
worst (largest) new/old ratio over the runs' pairs: above 1 means the new tree was slower in
that pair; the ratio of the two bests is beside it. Ours only: the peers' columns are the
same code in both trees.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def _rows(result: dict) -> dict[str, float]:
    """{row name: milliseconds of ours, lower is better} of one bench/results.json."""
    rows = {f"loss {tuple(r['shape'])} {r['targets']}": r["ours_ms"] for r in result["rows"]}
    for r in result["label_lists"]:
        k = "-".join(map(str, r["labels_per_row"]))
        rows[f"lists {tuple(r['shape'])} k={k}"] = r["lists_ms"]
    if result.get("example_net"):
        rows["example net, loss layer"] = result["example_net"]["ours_ms"]
    data = result.get("data_layer") or {}
    for name in ("decode_resize_crop", "large_jpeg"):
        if name in data:
            rows[f"data {name} ms/image"] = 1e3 / data[name]["ours_images_per_s"]
            rows[f"data {name} cpu ms/image"] = data[name]["ours_cpu_ms_per_image"]
    if "fast_images_per_s" in data.get("large_jpeg", {}):
        rows["data large_jpeg fast ms/image"] = 1e3 / data["large_jpeg"]["fast_images_per_s"]
    if "example_net" in data:
        rows["data example net, layer-fed"] = data["example_net"]["layer_ms"]
    for name, ms in (data.get("scale") or {}).get("batch_ms", {}).items():
        rows[f"data batch {name}"] = ms
    return rows


def _run(tree: Path, bench_args: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "results.json"
        env = {**os.environ, "PYTHONPATH": str(tree)}
        subprocess.run(
            [sys.executable, str(tree / "bench" / "bench.py"), "--out", str(out), *bench_args],
            cwd=tree,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return _rows(json.loads(out.read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--out", type=Path, help="also write every run's rows as JSON here")
    parser.add_argument("bench_args", nargs="*", help="after --: passed to bench.py")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    for run in range(args.runs):
        order = ("old", "new") if run % 2 == 0 else ("new", "old")
        for which in order:
            runs[which].append(_run(getattr(args, which).resolve(), args.bench_args))
            print(f"run {run + 1}/{args.runs}: {which} done", file=sys.stderr, flush=True)
    if args.out:
        args.out.write_text(json.dumps(runs, indent=1))
    print(f"| row | old best ms | new best ms | new/old, bests | worst of {args.runs} pairs |")
    print("|---|---|---|---|---|")
    for row in runs["old"][0]:
        old = [r[row] for r in runs["old"]]
        new = [r.get(row) for r in runs["new"]]
        if None in new:
            print(f"| {row} | {min(old):.3f} | (missing) | | |")
            continue
        worst = max(n / o for n, o in zip(new, old, strict=True))
        best = min(new) / min(old)
        print(f"| {row} | {min(old):.3f} | {min(new):.3f} | {best:.3f} | {worst:.3f} |")


if __name__ == "__main__":
    main()
