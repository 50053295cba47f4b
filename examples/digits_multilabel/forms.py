"""Train the example on each target kind and form; write ``docs/example/results.json``.

    python -m examples.digits_multilabel.forms            # about 5 minutes on 2 cores

The same net, seed and schedule on ``khot`` and ``ink`` targets, given to the loss dense
(HDF5), as label lists (HDF5) and from PNG files through the image data layer. The README's
table of the example is written from the results file by ``scripts/doc_results.py``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..machine import describe
from . import data

OUT = Path("docs/example/results.json")
METRICS = ("map", "precision_at_1", "precision_at_3", "recall_at_3")


def table(runs: list[dict]) -> str:
    """Markdown: a row per target kind, test mAP / P@1 / P@3 / R@3 per form."""
    forms = list(dict.fromkeys(r["targets_form"] for r in runs))  # in the order they ran
    header = "| targets | " + " | ".join(f"{form}: mAP / P@1 / P@3 / R@3" for form in forms)
    lines = [header + " |", "|---" * (len(forms) + 1) + "|"]
    for kind in data.TARGET_KINDS:
        cells = []
        for form in forms:
            run = next(r for r in runs if r["targets"] == kind and r["targets_form"] == form)
            cells.append(" / ".join(f"{run['test'][m]:.3f}" for m in METRICS))
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    from .nets import FORMS  # these import caffe; the table above does not
    from .train import train

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-iter", type=int)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    runs = []
    for kind in data.TARGET_KINDS:
        for form in FORMS:
            result = train(
                f"forms_{kind}_{form}",
                "softmax",
                kind,
                args.seed,
                args.max_iter,
                Path("runs/forms"),
                form=form,
            )
            result.pop("curves")
            runs.append(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": runs, "machine": describe()}, indent=2) + "\n")
    print("\n" + table(runs) + f"\n\nwrote {args.out}")


if __name__ == "__main__":
    main()
