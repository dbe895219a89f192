"""Figures drawn from the benchmarks' JSON files (never from live numbers).

    python -m benchmarks plot [--out DIR]     # redraw every DIR/NAME.png from DIR/NAME.json
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot(name: str, data: dict[str, Any], path: Path) -> Path | None:
    try:
        plt = _pyplot()
    except ImportError:
        return None  # matplotlib is in the bench extra; the JSON is the result either way
    fig = {"throughput": throughput, "transports": transports, "scale": scale,
           "embed_cost": embed_cost, "limits": limits}[name](plt, data)
    fig.text(0.01, 0.005, f"{data.get('command', '')}  |  {data['machine']['cpu']}, "
             f"{data['machine']['cores']} cores, {data['machine']['date'][:10]}",
             fontsize=7, color="gray")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def throughput(plt: Any, d: dict[str, Any]) -> Any:
    p = d["params"]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))
    fig.suptitle(f"creator throughput against the simulator "
                 f"({'quick' if d['quick'] else 'full'} run)")

    # (a) requests/s vs concurrency, with the physical limit and the baselines
    ax = axes[0][0]
    naive = [m for m in d["sweep"] if m["setting"] == "naive"]
    cs = [m["concurrency"] for m in naive]
    ax.plot(cs, [m["physical_limit_rps"] for m in naive], "k--", lw=1,
            label=f"physical limit: concurrency / {p['latency_s']:g} s")
    ax.plot(cs, [m["requests_per_s"] for m in naive], "o-", color="C0", label="creator (naive)")
    for m in d["sweep"]:
        if m["setting"] == "tree":
            ax.plot([m["concurrency"]], [m["requests_per_s"]], "s", color="C2", ms=8,
                    label=f"creator (tree) c={m['concurrency']}")
    aoai = [m for m in d["baselines"] if m["client"] == "async_openai"]
    if aoai:
        ax.plot([m["concurrency"] for m in aoai], [m["requests_per_s"] for m in aoai], "^-",
                color="C1", label="AsyncOpenAI + semaphore (baseline b)")
    seq = [m for m in d["baselines"] if m["client"] == "sequential"]
    if seq:
        ax.axhline(seq[0]["requests_per_s"], color="C3", lw=1.5,
                   label=f"original sequential loop (baseline a): {seq[0]['requests_per_s']:.2f}/s")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("--concurrency")
    ax.set_ylabel("completed requests / s")
    ax.set_title("closed loop: requests/s vs concurrency")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)

    # (b) client CPU per request
    ax = axes[0][1]
    ax.plot(cs, [m["cpu_ms_per_request_net"] for m in naive], "o-", color="C0",
            label="creator (start-up excluded)")
    ax.plot(cs, [m["cpu_ms_per_request"] for m in naive], "o:", color="C0", alpha=0.5,
            label="creator (whole process)")
    if aoai:
        ax.plot([m["concurrency"] for m in aoai], [m["cpu_ms_per_request_net"] for m in aoai],
                "^-", color="C1", label="AsyncOpenAI + semaphore (loop only)")
    ax.axhline(1.0, color="gray", ls="--", lw=1, label="target: 1 ms")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("--concurrency")
    ax.set_ylabel("client CPU ms per completed request")
    ax.set_title("client CPU per request")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)

    # (c) open loop: achieved vs offered, and latency
    ax = axes[1][0]
    ol = d["open_loop"]
    if ol:
        # the realised Poisson rate: a few seconds of arrivals differ from the nominal rate
        offered = [m["extra"].get("offered_realized_rps") or m["offered_rps"] for m in ol]
        cap = ol[0]["extra"]["capacity_rps"]
        top = max(offered + [cap]) * 1.1
        ax.plot([0, top], [0, top], color="gray", lw=0.8, ls=":", label="achieved = offered")
        ax.axhline(cap, color="k", ls="--", lw=1, label=f"server capacity {cap:g}/s")
        ax.plot(offered, [m["requests_per_s"] for m in ol], "o-", color="C0", label="achieved")
        ax.set_xlabel("offered rate (Poisson arrivals, as realised), requests / s")
        ax.set_ylabel("achieved requests / s")
        ax2 = ax.twinx()
        ax2.plot(offered, [m["latency_p50_s"] for m in ol], "s--", color="C1", label="p50 latency")
        ax2.plot(offered, [m["latency_p99_s"] for m in ol], "v--", color="C3", label="p99 latency")
        ax2.set_ylabel("latency from arrival, s")
        lines = ax.get_legend_handles_labels()
        lines2 = ax2.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="upper left")
    ax.set_title(f"open loop (creator.client.ChatClient), latency {p['openloop_latency_s']:g} s")
    ax.grid(True, alpha=0.3)

    # (d) rate-limited: completions per second over time
    ax = axes[1][1]
    for i, m in enumerate(d["rate_limited"]):
        tl = m["extra"].get("timeline") or []
        if len(tl) < 3:
            continue
        ts, rates = [], []
        for (t1, ok1, *_), (t2, ok2, *_) in zip(tl[::4], tl[4::4]):  # ~2 s bins
            if t2 > t1:
                ts.append((t1 + t2) / 2)
                rates.append((ok2 - ok1) / (t2 - t1))
        frac = m.get("achieved_fraction")
        label = f"{m['name']} ({frac:.0%})" if frac is not None else m["name"]
        ax.plot(ts, rates, "-", color=f"C{i}", lw=1.2, label=label)
        ax.axhline(m["physical_limit_rps"], color=f"C{i}", ls=":", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("completed requests / s (2 s bins)")
    ax.set_title("rate-limited: initial bucket, then the steady state (dotted: limit)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.02, 1, 0.97))
    return fig


def transports(plt: Any, d: dict[str, Any]) -> Any:
    rows = d["transports"]
    names = [r["name"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    fig.suptitle(f"client transports, one process, {d['params']['concurrency']} in flight, "
                 "near-zero-latency simulator")
    ok = [r for r in rows if r.get("available", True)]
    ax = axes[0]
    ax.barh([r["name"] for r in ok], [r["requests_per_s"] for r in ok], color="C0")
    ax.set_xlabel("completed requests / s (bounded by the simulator sharing 2 cores)")
    ax.invert_yaxis()
    ax.grid(True, axis="x", alpha=0.3)
    ax = axes[1]
    ax.barh([r["name"] for r in ok], [r["cpu_us_per_request"] for r in ok], color="C1")
    ax.set_xlabel("client CPU microseconds per request (lower is better)")
    ax.invert_yaxis()
    ax.grid(True, axis="x", alpha=0.3)
    missing = [n for n, r in zip(names, rows) if not r.get("available", True)]
    if missing:
        fig.text(0.5, 0.02, "not available here: " + ", ".join(missing), ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    return fig


def scale(plt: Any, d: dict[str, Any]) -> Any:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    fig.suptitle("creator: cost as the target grows (fast simulator)")
    for i, setting in enumerate(sorted({r["setting"] for r in d["runs"]})):
        rows = sorted((r for r in d["runs"] if r["setting"] == setting), key=lambda r: r["accepted"])
        xs = [r["accepted"] for r in rows]
        axes[0].plot(xs, [r["peak_rss_mb"] for r in rows], "o-", color=f"C{i}", label=setting)
        axes[1].plot(xs, [r["extra"]["seconds_per_1k"] for r in rows], "o-", color=f"C{i}",
                     label=setting)
        axes[2].plot(xs, [r["extra"]["cpu_s_per_1k"] for r in rows], "o-", color=f"C{i}",
                     label=setting)
    for ax, label in zip(axes, ("peak RSS, MB", "wall seconds per 1,000 records",
                                "client CPU seconds per 1,000 records")):
        ax.set_xscale("log")
        ax.set_xlabel("records created (--target)")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 0.94))
    return fig


def embed_cost(plt: Any, d: dict[str, Any]) -> Any:
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.6), gridspec_kw={"width_ratios": [1, 1, 1.3]})
    fig.suptitle("the sentence encoder of diverse / similar: backends and engine speed")
    # (a) encoder speed per backend, (b) agreement with today's vectors, (c) engine requests/s
    ok = [b for b in d["backends"] if "error" not in b]
    names = [b["backend"] for b in ok]
    x = range(len(ok))
    ax = axes[0]
    ax.bar([i - 0.2 for i in x], [b["bulk_records_per_s"] for b in ok], 0.4, color="C0",
           label="whole list (report), all workers")
    ax.bar([i + 0.2 for i in x], [b["per_reply_records_per_s"] for b in ok], 0.4, color="C1",
           label="reply by reply, 1 worker")
    ax.set_xticks(list(x), names, fontsize=8, rotation=20)
    ax.set_ylabel("records (questions) encoded per second")
    ax.set_title("(a) encoder speed", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(True, axis="y", alpha=0.3)
    ax = axes[1]
    for k, color in (("real", "C2"), ("run", "C4")):
        vals = [(b.get(f"choice_{k}") or {}).get("same_both") for b in ok]
        if any(v is not None for v in vals):
            ax.plot(names, [100 * (v or 0) for v in vals], "o", ms=8, color=color,
                    label=f"same next exemplar, % ({k} groups)")
    ax.plot(names, [100 * b["cosine_min"] for b in ok], "s", ms=7, color="C3",
            label="min cosine to today's vector (x100)")
    ax.axhline(99, color="k", ls=":", lw=1, label="99: the bar for both")
    lows = [100 * b["cosine_min"] for b in ok] + [
        100 * (b.get(f"choice_{k}") or {}).get("same_both", 1) for b in ok for k in ("real", "run")]
    ax.set_ylim(min([90, *lows]) - 2, 100.8)
    ax.set_title("(b) agreement with today's vectors", fontsize=9)
    ax.tick_params(axis="x", labelsize=8, rotation=20)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, alpha=0.3)
    ax = axes[2]
    runs = [(r["name"], r["requests_per_s"], "C0") for r in d["runs"]] + \
        [(f"{r['name']} @rpm", r["requests_per_s"], "C1") for r in d["rpm_runs"]]
    ax.barh([r[0] for r in runs][::-1], [r[1] for r in runs][::-1],
            color=[r[2] for r in runs][::-1])
    tree = next((r for r in d["runs"] if r["setting"] == "tree"), None)
    if tree:
        ax.axvline(0.8 * tree["requests_per_s"], color="C0", ls="--", lw=1,
                   label="80% of tree (no limit)")
    rpm = d["params"]["rpm"] / 60
    ax.axvline(0.9 * rpm, color="C1", ls="--", lw=1, label=f"90% of --rpm {d['params']['rpm']:g}")
    ax.set_xlabel("requests/s")
    ax.set_title(f"(c) engine, c={d['params']['concurrency']}, {d['params']['latency_s']:g} s "
                 "latency", fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout(rect=(0, 0.04, 1, 0.94))
    return fig


KNOWLEDGE_COLOURS = {"given": "C0", "headers": "C2", "retry-after": "C4", "nothing": "C1"}


def limits(plt: Any, d: dict[str, Any]) -> Any:
    """Small multiples: the units the server admitted per second over time (thin), their 5-s
    average (thick, coloured by what the client knew), 429s per second (red, request limits
    only), and the limit (dashed)."""
    cases = [c for c in d["cases"] if c.get("series")]
    cols = 6 if len(cases) > 12 else min(4, max(1, len(cases)))
    rows = max(1, -(-len(cases) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.5 * rows + 0.8), squeeze=False)
    fig.suptitle("limits: what the server admitted per second, from the first request (thin: each "
                 "second; thick: 5-s average; red: 429s per second (RPM panels); dashed: the "
                 "limit; dotted: SIGINT)\ncolour: what the client knew - given (blue), headers "
                 "(green), Retry-After only (purple), nothing (orange); AsyncOpenAI baselines "
                 "by the same colours", fontsize=10)
    for ax, c in zip([a for row in axes for a in row], cases):
        s = c["series"]
        limit = c["limit_per_s"]
        scale = 1.0 if c["limit_units"] == "requests" else 1000.0
        ts = [t + 0.5 for t in s["t"]]  # the middle of each second
        units = [u / scale for u in s["units"]]
        colour = KNOWLEDGE_COLOURS.get(c["knowledge"], "C7")
        ax.plot(ts, units, "-", color=colour, lw=0.6, alpha=0.45)
        # the 5-s average over whole seconds (the first second is partial), at each window's end
        whole = [(t, u) for t, u in zip(s["t"], units) if t >= 0 and t + 1 <= s["sigint_t"]]
        if len(whole) >= 5:
            ax.plot([whole[i][0] + 1 for i in range(4, len(whole))],
                    [sum(u for _, u in whole[i - 4:i + 1]) / 5 for i in range(4, len(whole))],
                    "-", color=colour, lw=1.6)
        top = limit / scale * 1.6
        if c["limit_units"] == "requests":  # (429s are requests: drawn on request panels only)
            # more 429s per second than the panel shows run along its top edge
            ax.plot(ts, [min(v, top * 0.99) for v in s["rate_limited"]], "-", color="C3", lw=0.6,
                    alpha=0.7)
        ax.axhline(limit / scale, color="k", ls="--", lw=0.9)
        ax.axvline(s["sigint_t"], color="gray", ls=":", lw=0.8)
        ax.set_ylim(0, top)
        ax.set_xlim(left=0)
        held = c.get("held_whole")
        steady = c.get("held_steady")
        label = "" if held is None else f"held {held:.1%}"
        if steady is not None:
            label += f", after 60 s {steady:.1%}"
        if c.get("per_1000_429") is not None:
            label += f"\n429s/1k {c['per_1000_429']:.1f}, lost {c.get('lost')}"
        ax.text(0.98, 0.04, label, transform=ax.transAxes, ha="right", va="bottom", fontsize=6.5,
                bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})
        ax.set_title(c["name"], fontsize=7.5)
        ax.tick_params(labelsize=6.5)
        ax.set_ylabel("requests / s" if scale == 1.0 else "1,000 tokens / s", fontsize=6.5)
        ax.grid(True, alpha=0.25)
    for ax in [a for row in axes for a in row][len(cases):]:
        ax.axis("off")
    fig.tight_layout(rect=(0, 0.2 / (2.5 * rows + 0.8), 1, 1 - 0.6 / (2.5 * rows + 0.8)))
    return fig
