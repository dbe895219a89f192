"""The learner alone on the fake clock: what it holds where nothing is known, over many seeds.

    python -m benchmarks.fakeclock [--duration S] [--seeds 1,2,3,4] [--out FILE.json]
    python -m benchmarks.fakeclock --compare BEFORE.json AFTER.json

The simulator's rows (`python -m benchmarks limits`) take real time, one run each. This runs the
same `Limits` against `tests/fakeprovider.py` (a model of the providers' enforcement on a
simulated clock, no network, no process) for every row below x seed, in about a minute for
two-minute runs: nothing known (no headers, no Retry-After, no limit given), concurrency 64,
prompts of 103 tokens, max_tokens 477 for the first replies then 228, replies of 162 tokens.

Rows: enforcement (a bucket of a minute that starts full; fixed windows of 1 s, 10 s and of the
clock's minute; a sliding minute; GCRA with a burst of 3; a sliding window counter of 1 s;
Together's per-second count of tokens as generated) x what binds (1,200 RPM or 300,000 TPM) x
replies (0.1 s +- 5%, or 1.7 s +- 50%) x a network round trip (0 or 0.2 s). Each row: the share of
the limit held over the run (by the lowest seed, and on average), the longest run of seconds after
the first minute whose 5-s average stayed under half the limit, and 429s per 1,000 requests.
`--compare` prints the rows whose lowest share moved by a point or more, whose seconds under half
changed, or whose 429s moved by one per 1,000 or more.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import fakeprovider  # noqa: E402
from fakeprovider import Provider, simulate  # noqa: E402

MODES = {
    **fakeprovider.MODES,
    "clock 60 s": dict(mode="fixed", window_s=60),  # fixed windows of 60 s begin with the minute
    "together 1 s": dict(mode="fixed", window_s=1, as_generated=True),
}
LIMITS = {"rpm": {"rpm": 1200}, "tpm": {"tpm": 300_000}}
REPLIES = ((0.1, 0.05), (1.7, 0.5))  # latency, spread
RTTS = (0.0, 0.2)
PROMPT, MAX_TOKENS, FIRST_MAX_TOKENS, USED = 103, 228, 477, 162


def rows():
    for mode, enforcement in MODES.items():
        for bound, limit in LIMITS.items():
            if mode == "together 1 s" and bound == "rpm":
                continue  # its per-second count is of tokens
            for latency, spread in REPLIES:
                for rtt in RTTS:
                    yield f"{mode} {bound} lat{latency} rtt{rtt}", dict(
                        **enforcement, **limit, latency=latency, latency_spread=spread, rtt=rtt)


def run_row(provider_args: dict, seeds: list[int], duration: float) -> list[list[float]]:
    """Per seed: [held over the run, held after the first minute, seconds under half, 429s per
    1,000]."""
    out = []
    for seed in seeds:
        provider = Provider(**provider_args, seed=seed)
        run, _ = simulate(provider, duration=duration, concurrency=64, prompt=PROMPT,
                          max_tokens=MAX_TOKENS, used=USED, first_max_tokens=FIRST_MAX_TOKENS,
                          seed=seed)
        per_second = provider.limit_rps(PROMPT + USED)
        out.append([run.held(per_second), run.held(per_second, start=60),
                    run.longest_below(per_second, 0.5, start=60), 1000 * run.refused_share()])
    return out


def line(name: str, results: list[list[float]]) -> str:
    held = [r[0] for r in results]
    return (f"{name:32s} held {min(held):.3f}-{max(held):.3f} (mean {sum(held) / len(held):.3f})"
            f"  under half <= {max(r[2] for r in results):.0f} s"
            f"  429s/1k {min(r[3] for r in results):.1f}-{max(r[3] for r in results):.1f}")


def compare(before: dict, after: dict) -> None:
    for name, old in before.items():
        new = after.get(name)
        if new is None:
            continue
        low = (min(r[0] for r in old), min(r[0] for r in new))
        below = (max(r[2] for r in old), max(r[2] for r in new))
        refused = (max(r[3] for r in old), max(r[3] for r in new))
        if abs(low[1] - low[0]) >= 0.01 or below[0] != below[1] or \
                abs(refused[1] - refused[0]) >= 1.0:
            print(f"{name:32s} lowest {low[0]:.3f} -> {low[1]:.3f}  under half {below[0]:.0f} -> "
                  f"{below[1]:.0f} s  most 429s/1k {refused[0]:.1f} -> {refused[1]:.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fakeclock",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=120.0, help="simulated seconds a run")
    parser.add_argument("--seeds", default="1,2,3,4", help="comma-separated")
    parser.add_argument("--out", help="write every row's per-seed figures here (JSON)")
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args(argv)
    if args.compare:
        try:
            before, after = (json.loads(Path(p).read_text()) for p in args.compare)
        except (OSError, ValueError) as e:
            parser.error(f"--compare: {e}")
        compare(before, after)
        return 0
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error("--seeds takes integers separated by commas, e.g. 1,2,3,4")
    if not 60 < args.duration <= 3600:
        parser.error("--duration is from 60 (exclusive: figures are after the first minute) "
                     "to 3600 simulated seconds")
    if args.out and not Path(args.out).resolve().parent.is_dir():
        parser.error(f"--out: no folder {Path(args.out).resolve().parent}")
    results = {}
    for name, provider_args in rows():
        results[name] = run_row(provider_args, seeds, args.duration)
        print(line(name, results[name]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
