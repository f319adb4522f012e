"""The benchmark's outputs: latest.json (every figure and phase), latest.md (the short report with
each target met or missed) and latest.png (records/s and HubSpot calls over the backfill)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from bench.figures import Target

TARGETS = {
    "limit_utilization": Target("limit_utilization", ">=", 0.9),
    "throttled_ratio": Target("throttled_ratio", "<=", 0.01),
    "noop_delta_write_calls": Target("noop_delta_write_calls", "==", 0),
    "pipeline_records_per_s_per_core": Target("pipeline_records_per_s_per_core", ">=", 5000),
}


def verdicts(out: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target: figure, value, target, met (None: not measured)."""
    f = out["figures"]
    cfg = out["config"]
    rows: list[dict[str, Any]] = []

    def row(name: str, value: Any, target: Target, note: str = "") -> None:
        rows.append({"figure": name, "value": value, "target": target.text(), "met": target.met(value), "note": note})

    for name, target in TARGETS.items():
        row(name, f[name], target)
    bound = 1.1 * f["min_calls_per_record"]
    for phase in ("backfill", "delta"):
        row(f"calls_per_record.{phase}", f["calls_per_record"][phase], Target("", "<=", bound),
            f"writes only: {_fmt(f['calls_per_record'][f'{phase}_writes_only'])}")
    for key, value in (f["delta_scaling"] or {}).items():
        row(f"delta_scaling.{key}", value, Target("", "<=", 1.2), "large shop ÷ small shop")
    interval = cfg["sync_interval"]
    row("freshness_p95_s", f["freshness_p95_s"], Target("", "<=", interval + 5), f"SYNC_INTERVAL={interval}")
    for worker, mb in (f["peak_rss_mb"] or {}).items():
        row(f"peak_rss_mb.{worker}", mb, Target("", "<=", 300), f"{cfg['scaling_sizes'][1]}-customer backfill")
    for kind in ("duplicates", "lost"):
        for phase, n in f[kind].items():
            row(f"{kind}.{phase}", n, Target("", "==", 0))
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "not measured"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown(out: dict[str, Any]) -> str:
    f, cfg, m = out["figures"], out["config"], out["machine"]
    bf = out["phases"]["backfill"]
    lines = [
        f"# ctsync benchmark ({cfg['mode']})",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), Python {m['python']}. HubSpot limit {cfg['burst_limit']}/10 s "
        f"(enforced by the sandbox), {cfg['workers']} worker processes × concurrency {cfg['concurrency']}, "
        f"real Redis and real worker processes. Run took {out.get('elapsed_s', 0):.0f} s.",
        f"Sizes: backfill of {cfg['customers']} customers ({bf['records']} records: customers, orders, line items); "
        f"delta of {cfg['delta_changes']} changed customers; delta scaling {cfg['scaling_sizes'][0]} vs "
        f"{cfg['scaling_sizes'][1]} customers; {cfg['freshness_changes']} changes for freshness at SYNC_INTERVAL="
        f"{cfg['sync_interval']} s; baseline time-boxed to {cfg['baseline_seconds']:.0f} s.",
        "",
        "| figure | value | target | met |",
        "|---|---|---|---|",
    ]
    for r in verdicts(out):
        met = "not measured" if r["met"] is None else ("met" if r["met"] else "**missed**")
        note = f" ({r['note']})" if r["note"] else ""
        lines.append(f"| `{r['figure']}`{note} | {_fmt(r['value'])} | {r['target']} | {met} |")
    lines += [
        "",
        "| comparison | value |",
        "|---|---|",
        f"| `records_per_s` | {_fmt(f['records_per_s'])} |",
        f"| `theoretical_max_records_per_s` | {_fmt(f['theoretical_max_records_per_s'])} |",
        f"| `budget_utilization` (all burst calls, reads too) | {_fmt(f['budget_utilization'])} |",
        f"| `min_calls_per_record` | {_fmt(f['min_calls_per_record'])} |",
        f"| `baseline_records_per_s` (SDK, one call per record) | {_fmt(f['baseline_records_per_s'])} |",
        f"| `baseline_speedup` | {_fmt(f['baseline_speedup'])} |",
        f"| max burst calls in any 10 s of the backfill | {bf['max_calls_in_any_10s']} |",
        "",
        "Where the backfill's HubSpot calls went (endpoint: status → calls):",
        "",
    ]
    for endpoint, statuses in sorted(bf.get("hubspot_by_endpoint", {}).items()):
        lines.append(f"* `{endpoint}`: {statuses}")
    cpu = bf.get("cpu_s")
    if cpu:
        parts = ", ".join(f"{k} {v}" for k, v in cpu.items() if not k.startswith("machine_"))
        lines += ["", f"CPU seconds during the backfill: {parts}; the machine was busy "
                      f"{cpu['machine_busy']} of {cpu['machine_capacity']} core-seconds "
                      f"({_fmt(cpu['machine_busy_fraction'])})."]
    lines += ["", "Definitions and causes of misses: docs/benchmarks.md. Every phase's detail: latest.json.", ""]
    return "\n".join(lines)


def chart(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tl = out["timeline"]
    limit = out["config"]["burst_limit"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, dpi=80)
    progress = tl.get("progress", [])
    rates = [(t1, (n1 - n0) / (t1 - t0)) for (t0, n0), (t1, n1) in itertools.pairwise(progress)
             if t1 - t0 > 0.05]
    smooth = [(t, sum(r for _, r in rates[max(0, i - 9):i + 1]) / len(rates[max(0, i - 9):i + 1]))
              for i, (t, _) in enumerate(rates)]
    top.plot([t for t, _ in smooth], [r for _, r in smooth], color="tab:blue")
    top.set_ylabel("records/s (customers, orders)")
    top.set_title(f"Backfill: {out['config']['customers']} customers, limit {limit}/10 s")
    calls = tl.get("calls", [])
    end = int(max((c[0] for c in calls), default=1)) + 1
    for label, pick, color in (("burst calls 2xx", lambda c: c[2] == "burst" and c[1] < 400, "tab:green"),
                               ("429", lambda c: c[1] == 429, "tab:red"),
                               ("association calls", lambda c: c[2] == "associations", "tab:gray")):
        bins = [0] * end
        for c in calls:
            if pick(c) and 0 <= int(c[0]) < end:
                bins[int(c[0])] += 1
        per_s = [sum(bins[max(0, i - 9):i + 1]) / min(10, i + 1) for i in range(end)]
        bottom.plot(range(end), per_s, label=label, color=color)
    bottom.axhline(limit / 10, linestyle="--", color="black", label=f"limit ({limit / 10:g}/s)")
    bottom.set_ylabel("HubSpot calls/s (10 s mean)")
    bottom.set_xlabel("seconds since the backfill started")
    bottom.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_all(out: dict[str, Any], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    out = {**out, "targets": verdicts(out)}
    timeline = out.pop("timeline", {})
    json_path, md_path, png_path = directory / "latest.json", directory / "latest.md", directory / "latest.png"
    json_path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    md_path.write_text(markdown(out))
    chart({**out, "timeline": timeline}, png_path)
    return [json_path, md_path, png_path]
