"""Keep the results in README.md and docs/ equal to the results files that produced them.

    python scripts/doc_results.py --check   # exit 1 naming every stale block (make test runs it)
    python scripts/doc_results.py --write   # rewrite the blocks from the results files

A block is the text between ``<!-- results: NAME -->`` and ``<!-- /results -->`` in a Markdown
file; NAME picks a renderer below, which reads one results file (written by ``make
experiment``, ``python -m examples.digits_multilabel.forms`` or ``make bench``) and returns
the block's Markdown. Numbers quoted in prose stay out of these files' way: a number worth
quoting goes into a block.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BLOCK = re.compile(r"(<!-- results: ([\w-]+) -->\n)(.*?)(<!-- /results -->)", re.S)


def _load(relative: str) -> dict:
    return json.loads((REPO / relative).read_text())


def _signed(values: list[float]) -> str:
    return ", ".join(f"{v:+.3f}" for v in values)


def example() -> str:
    from examples.digits_multilabel.forms import table

    results = _load("docs/example/results.json")
    seconds = [r["train_seconds"] for r in results["runs"]]
    return (
        f"{table(results['runs'])}\n\n{results['runs'][0]['iterations']} iterations, seed "
        f"{results['runs'][0]['seed']}, {min(seconds):.0f}-{max(seconds):.0f} s of training each "
        f"on {results['machine']}."
    )


def experiment() -> str:
    from examples.digits_multilabel.experiment import table

    results = _load("docs/experiment/results.json")
    return f"{table(results['rows'])}\n\n({results['machine']})"


def _sweep_table(sweeps: dict, label: str) -> str:
    """Validation mAP by base learning rate, a row per sweep."""
    rates = list(next(iter(sweeps.values())))
    lines = [f"| {label} | " + " | ".join(f"lr {r}" for r in rates) + " |"]
    lines.append("|---" * (len(rates) + 1) + "|")
    for name, by_rate in sweeps.items():
        cells = " | ".join(f"{by_rate[r]:.3f}" for r in rates)
        lines.append(f"| {name.replace('_', ', ')} | {cells} |")
    return "\n".join(lines)


def experiment_sweep() -> str:
    sweeps = _load("docs/experiment/results.json")["sweep_val_map"]
    return _sweep_table(sweeps, "loss, targets")


def experiment_paired() -> str:
    import numpy as np

    runs = _load("docs/experiment/results.json")["runs"]
    test_map = {(r["targets"], r["seed"], r["loss"]): r["test"]["map"] for r in runs}
    lines = ["| targets | softmax - sigmoid test mAP, by seed | mean | std |", "|---|---|---|---|"]
    for kind in sorted({r["targets"] for r in runs}, reverse=True):
        seeds = sorted({r["seed"] for r in runs if r["targets"] == kind})
        diffs = [test_map[kind, s, "softmax"] - test_map[kind, s, "sigmoid"] for s in seeds]
        lines.append(
            f"| {kind} | {_signed(diffs)} (seeds {', '.join(map(str, seeds))}) | "
            f"{np.mean(diffs):+.3f} | {np.std(diffs, ddof=1):.3f} |"
        )
    return "\n".join(lines)


def long_tail() -> str:
    from examples.long_tail.experiment import paired_table

    results = _load("docs/long_tail/results.json")
    seeds = sorted({r["seed"] for r in results["runs"]})
    text = paired_table(results["runs"], seeds)[0]
    first = results["runs"][0]
    return (
        f"{text}\n\nmAP averages over the {first['classes_scored']} classes with a positive in "
        f"the test set, rare-half mAP over the {first['rare_classes_scored']} of the rare half "
        f"that have one ({results['minutes']} minutes on {results['machine']})."
    )


def long_tail_sweep() -> str:
    return _sweep_table(_load("docs/long_tail/results.json")["sweeps"], "loss")


def _bench_runs() -> list[dict]:
    """Every committed `make bench` run (docs/performance/run-*.json), oldest first."""
    paths = sorted(
        (REPO / "docs" / "performance").glob("run-*.json"), key=lambda p: int(p.stem[4:])
    )
    if not paths:
        raise SystemExit("no docs/performance/run-*.json: run `make bench BENCH_ARGS=--record`")
    return [json.loads(path.read_text()) for path in paths]


def _times(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.2f}" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f}-{high:.2f}"


def _span(values: list[float]) -> str:
    """The worst (largest) ratio over the runs, and the range when they differ."""
    low, high = min(values), max(values)
    return (
        f"**{high:.2f}**"
        if f"{low:.2f}" == f"{high:.2f}"
        else f"**{high:.2f}** ({low:.2f}-{high:.2f})"
    )


def _ratio_columns(runs: list[dict], table: str, key: tuple, ours: str, peers: list[str]) -> list:
    rows = [
        next(r for r in run[table] if (tuple(r["shape"]), r.get("targets")) == key) for run in runs
    ]
    cells = []
    for peer in peers:
        values = [r[f"{ours}_ms"] / r[f"{peer}_ms"] for r in rows if r.get(f"{peer}_ms")]
        cells.append(_span(values) if values else "—")
    return rows, cells


def bench_loss() -> str:
    runs = _bench_runs()
    peers = ["native", "torch", "floor"]
    lines = [
        "| shape | targets | ours ms | ours/native | ours/torch | ours/floor | alloc/iter | "
        "retained/scores |",
        "|---" * 8 + "|",
    ]
    for first in runs[0]["rows"]:
        key = (tuple(first["shape"]), first["targets"])
        rows, cells = _ratio_columns(runs, "rows", key, "ours", peers)
        ms = [r["ours_ms"] for r in rows]
        alloc = max(r["allocated_bytes_per_iter"] for r in rows) / 1024
        retained = max(r["retained_bytes"] / r["score_blob_bytes"] for r in rows)
        lines.append(
            f"| {key[0]} | {key[1]} | {_times(ms)} | {' | '.join(cells)} | "
            f"{alloc:.1f} KiB | {retained:.2f} |"
        )
    return "\n".join(lines) + "\n\n" + _bench_footer(runs)


def bench_lists() -> str:
    runs = _bench_runs()
    lines = [
        "| shape | lists ms | lists/index | lists/dense | lists/torch | alloc/iter | "
        "target bytes/row: lists vs dense |",
        "|---" * 7 + "|",
    ]
    for first in runs[0]["label_lists"]:
        key = (tuple(first["shape"]), None)
        rows, cells = _ratio_columns(runs, "label_lists", key, "lists", ["index", "dense", "torch"])
        ms = [r["lists_ms"] for r in rows]
        alloc = max(r["allocated_bytes_per_iter"] for r in rows) / 1024
        lists, dense = (first[f"target_bytes_{form}"] // key[0][0] for form in ("lists", "dense"))
        lines.append(
            f"| {key[0]} | {_times(ms)} | {' | '.join(cells)} | {alloc:.1f} KiB | "
            f"{lists} B vs {dense} B |"
        )
    return "\n".join(lines) + "\n\n" + _bench_footer(runs)


def bench_example_net() -> str:
    runs = [run for run in _bench_runs() if run.get("example_net")]
    ratios = [run["example_net"]["speed_ratio"] for run in runs]
    return (
        f"Training the example conv net (batch 64, forward + backward) with our loss instead of "
        f"the native one: speed ours/native {min(ratios):.2f}-{max(ratios):.2f} over "
        f"{len(runs)} runs (1.0 = as fast; measured in a fresh process)."
    )


def _bench_footer(runs: list[dict]) -> str:
    machines = sorted({run.get("machine", "machine not recorded") for run in runs})
    return (
        f"Worst ratio over {len(runs)} run{'s' * (len(runs) > 1)} in bold, the range in "
        f"brackets; times are each run's best round ({'; '.join(machines)})."
    )


RENDERERS: dict[str, Callable[[], str]] = {
    "example": example,
    "experiment": experiment,
    "experiment-sweep": experiment_sweep,
    "experiment-paired": experiment_paired,
    "long-tail": long_tail,
    "long-tail-sweep": long_tail_sweep,
    "bench-loss": bench_loss,
    "bench-lists": bench_lists,
    "bench-example-net": bench_example_net,
}


def documents() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def render(text: str, where: str) -> str:
    """``text`` with every results block rendered anew."""

    def one(match: re.Match) -> str:
        name = match.group(2)
        if name not in RENDERERS:
            raise SystemExit(f"{where}: unknown results block {name!r}; known: {list(RENDERERS)}")
        return f"{match.group(1)}{RENDERERS[name]().strip()}\n{match.group(4)}"

    return BLOCK.sub(one, text)


def stale() -> list[str]:
    """The files whose blocks differ from what the results files give."""
    return [
        str(path.relative_to(REPO))
        for path in documents()
        if render(path.read_text(), str(path)) != path.read_text()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", action="store_true", help="exit 1 if any block is stale")
    action.add_argument("--write", action="store_true", help="rewrite the blocks")
    args = parser.parse_args()
    if args.check:
        names = stale()
        if names:
            raise SystemExit(f"stale results blocks in {names}: run scripts/doc_results.py --write")
        print("results blocks match the results files")
        return
    for path in documents():
        text = path.read_text()
        new = render(text, str(path))
        if new != text:
            path.write_text(new)
            print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
