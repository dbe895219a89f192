"""python -m benchmarks NAME [--quick] [--out DIR] [--only TEXT [--duration S] (limits)]

NAME: throughput | transports | scale | embed_cost | limits | all | plot | tables

Each benchmark writes DIR/NAME.json (the command, the machine, the figures) and DIR/NAME.png, and
prints its plain-text table. Full runs write to benchmarks/results/ (the committed results);
--quick runs a smaller version into a temporary folder unless --out is given.
`plot` redraws every PNG from the JSON files in DIR (default benchmarks/results/); `tables` prints
their plain-text tables again.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from .common import RESULTS, command_line, log, output_dir, read_result, to_jsonable, write_result

BENCHMARKS = ("throughput", "transports", "scale", "embed_cost", "limits")


def run_one(name: str, quick: bool, out: Path, command: str, only: str | None = None,
            duration_s: float | None = None) -> dict:
    from . import plot

    module = importlib.import_module(f"benchmarks.{name}")
    started = time.monotonic()
    log(f"== {name}{' (quick)' if quick else ''} -> {out}")
    result = module.run(quick, command, only=only, duration_s=duration_s) if only else \
        module.run(quick, command)
    path = write_result(result, out, name)
    data = to_jsonable(result)
    print(f"\n## {name}  ({command})\n")
    print(module.tables(data))
    png = plot.plot(name, data, out / f"{name}.png")
    log(f"== {name} done in {time.monotonic() - started:.0f} s: {path}" + (f", {png}" if png else ""))
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("name", choices=(*BENCHMARKS, "all", "plot", "tables"))
    parser.add_argument("--quick", action="store_true",
                        help="a small version (all five in about three minutes), for tests")
    parser.add_argument("--out", help="folder for NAME.json and NAME.png (default "
                        "benchmarks/results, or a temporary folder with --quick)")
    parser.add_argument("--only", metavar="TEXT", help="limits: only the cases whose name "
                        "contains TEXT, or one of TEXT's |-separated parts (needs --out: the "
                        "committed results are whole runs)")
    parser.add_argument("--duration", metavar="S", type=float, help="limits, with --only: run "
                        "each case chosen this many seconds (what a rate holds over minutes)")
    args = parser.parse_args(argv)
    if args.only and (args.name != "limits" or not args.out):
        parser.error("--only is for limits, with --out")
    if args.duration is not None and (not args.only or not 10 <= args.duration <= 3600):
        parser.error("--duration is for limits with --only, from 10 to 3600 seconds")
    command = command_line(argv)
    if args.name in ("plot", "tables"):
        from . import plot

        folder = Path(args.out) if args.out else RESULTS
        for name in BENCHMARKS:
            path = folder / f"{name}.json"
            if not path.exists():
                continue
            data = read_result(path)
            if args.name == "plot":
                print(plot.plot(name, data, folder / f"{name}.png"))
            else:
                module = importlib.import_module(f"benchmarks.{name}")
                print(f"\n## {name}  ({data['command']})\n")
                print(module.tables(data))
        return 0
    out = output_dir(args.out, args.quick)
    names = BENCHMARKS if args.name == "all" else (args.name,)
    for name in names:
        run_one(name, args.quick, out, command, args.only, args.duration)
    return 0


if __name__ == "__main__":
    sys.exit(main())
