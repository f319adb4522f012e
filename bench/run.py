"""`python -m bench [--quick]`: the benchmark. Starts both sandboxes (HubSpot enforcing its real rate
limit), real Celery workers on the real Redis (database 12, flushed), and measures every figure of
docs/benchmarks.md in one run, the naive baseline included. Writes bench/results/latest.{json,md,png}."""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import redis
import requests

from bench import sandboxes as sb
from bench.config import BENCH_DB, FULL, QUICK, BenchConfig
from bench.figures import (
    CallCounts,
    budget_of,
    is_write,
    limit_utilization,
    max_rolling,
    min_calls_per_record,
    percentile,
    rate_per_window,
    ratio,
    steady_window,
    theoretical_max_records_per_s,
)
from bench.rss import RssSampler

REDIS_URL = f"redis://127.0.0.1:6379/{BENCH_DB}"
LOG_CAPACITY = 400_000
STALL_S = 60.0  # no run counter moved for this long: the run will not complete
DELTA_POLL_S = 0.02  # resolution of a delta's seconds (delta scaling compares two of them)
SCALING_ROUNDS = 5  # deltas of the same 200 changed customers per shop; their median is compared


class Bench:
    def __init__(self, cfg: BenchConfig, log_dir: Path) -> None:
        # The fleet's environment is set before the Celery app is imported (it reads it once).
        self.cfg = cfg
        self.env = {"REDIS_URL": REDIS_URL, "SYNC_INTERVAL": str(cfg.sync_interval), "EXTRACT_OVERLAP_SECONDS": "5",
                    "HUBSPOT_BURST_LIMIT": str(cfg.burst_limit), "LOG_JSON": "true"}
        os.environ.update(self.env)
        from sync_tasks.localfleet import LocalFleet

        self.fleet = LocalFleet(redis_url=REDIS_URL, ct_size=cfg.customers, ct_seed=cfg.seed, log_dir=log_dir,
                                hubspot_args=["--burst-limit", str(cfg.burst_limit), "--log-capacity",
                                              str(LOG_CAPACITY)],
                                extra_env=self.env)
        self.workers: dict[str, int] = {}
        self.beat: subprocess.Popen[bytes] | None = None
        self.out: dict[str, Any] = {"phases": {}, "timeline": {}}

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def ct(self) -> str:
        assert self.fleet.ct
        return self.fleet.ct.url

    @property
    def hs(self) -> str:
        assert self.fleet.hubspot
        return self.fleet.hubspot.url

    def say(self, text: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {text}", flush=True)

    def state(self) -> Any:
        from sync_tasks.redis_conn import get_redis
        from sync_tasks.state import SyncState

        return SyncState(get_redis())

    def start_workers(self) -> None:
        for i in range(self.cfg.workers):
            name = f"bench{i + 1}"
            self.workers[name] = self.fleet.start_worker(name, concurrency=self.cfg.concurrency).pid
        self.fleet.wait_for_workers(self.cfg.workers, timeout=120)

    def cpu_meter(self) -> Any:
        from bench.cpu import CpuMeter, redis_pids

        assert self.fleet.ct and self.fleet.ct.proc and self.fleet.hubspot and self.fleet.hubspot.proc
        return CpuMeter({"workers": list(self.workers.values()), "hubspot_sandbox": [self.fleet.hubspot.proc.pid],
                         "commercetools_sandbox": [self.fleet.ct.proc.pid], "redis": redis_pids(),
                         "bench": [-os.getpid()]})  # negative: this process alone, not its children

    def stop_beat(self) -> None:
        if self.beat and self.beat.poll() is None:
            os.killpg(self.beat.pid, signal.SIGTERM)
            self.beat.wait(timeout=30)
        self.beat = None

    def fresh_shop(self, size: int) -> dict[str, Any]:
        """A seeded shop of `size`, an empty HubSpot with our schema, empty queues and Redis state."""
        from sync_tasks.commerce_schema import setup_all
        from sync_tasks.hubspot_client import HubSpotClient
        from sync_tasks.limiter import RateLimiter
        from sync_tasks.redis_conn import get_redis
        from sync_tasks.settings import get_settings
        from workers import app

        self.stop_beat()
        app.control.purge()
        self.fleet.flush_redis()
        stats = sb.reset_commercetools(self.ct, size, self.cfg.seed)
        sb.reset_hubspot(self.hs)
        settings = get_settings()
        setup_all(HubSpotClient(settings, RateLimiter(get_redis(), settings), wait_for_budget=True), settings,
                  get_redis())
        time.sleep(10.5)  # setup's calls leave HubSpot's rolling window before the measured phase
        sb.reset_log(self.hs)
        sb.reset_log(self.ct)
        return stats

    def phase_calls(self, name: str) -> CallCounts:
        """HubSpot calls since the last log reset, added to the run's total (for throttled_ratio)."""
        calls = sb.counts(self.hs)
        self.out["phases"].setdefault(name, {})["hubspot_calls"] = calls.as_dict()
        self.out["phases"][name]["hubspot_by_endpoint"] = sb.summary(self.hs).get("by_endpoint", {})
        return calls

    def backfill(self, entity: str, progress: list[tuple[float, int]] | None = None, base: int = 0) -> dict[str, Any]:
        from sync_tasks.runs import send_backfill

        state = self.state()
        run_id = state.start_run(entity, "backfill")
        send_backfill(entity, None, None, run_id)

        def note(run: dict[str, Any]) -> None:
            if progress is not None:
                progress.append((time.time(), base + sum(int(run.get(f, 0)) for f in ("created", "updated", "skipped",
                                                                                  "failed"))))

        return self.wait(state, run_id, note)

    def wait(self, state: Any, run_id: str, note: Any = None, poll_s: float = 0.3) -> dict[str, Any]:
        """Until the run's counters account for every extracted record. A run whose counters stop
        short (nothing moving for STALL_S) is a product defect: reported as `stalled`, with its end
        at the last counter change, and the benchmark carries on. `poll_s` is the resolution of
        `finished_at`."""
        last: dict[str, Any] = {}
        changed = time.time()
        deadline = time.monotonic() + self.cfg.run_timeout_s
        while time.monotonic() < deadline:
            run = state.run(run_id)
            if note:
                note(run)
            if run != last:
                last, changed = run, time.time()
            if state.run_complete(run_id):
                return {**run, "run_id": run_id, "stalled": False, "finished_at": time.time()}
            if time.time() - changed > STALL_S:
                self.say(f"run {run_id} stalled short of its extracted count: {run}")
                return {**run, "run_id": run_id, "stalled": True, "finished_at": changed}
            time.sleep(poll_s)
        raise TimeoutError(f"run {run_id} did not finish within {self.cfg.run_timeout_s}s")

    def delta(self, entity: str) -> dict[str, Any]:
        from sync_tasks.runs import latest_run_after, send_extract

        state = self.state()
        started = time.time()
        send_extract(entity)
        deadline = time.monotonic() + 300
        # A delta of 200 customers takes well under a second: its end is polled every 20 ms (at the
        # 0.3 s of a backfill's polling, 0.2 s and 0.5 s were the only values a delta could take).
        while time.monotonic() < deadline:
            run_id = latest_run_after(state, entity, started)
            if run_id:
                run = self.wait(state, run_id, poll_s=DELTA_POLL_S)
                run["seconds"] = run["finished_at"] - started
                return run
            time.sleep(DELTA_POLL_S)
        raise TimeoutError(f"no {entity} delta run started; see {self.fleet.log_dir}")

    # -- phases --------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        self.out["config"] = cfg.as_dict()
        self.out["machine"] = {"cores": os.cpu_count(), "platform": platform.platform(),
                               "python": platform.python_version(), "cpu": _cpu_model()}
        started = time.time()
        self.say(f"starting sandboxes ({cfg.customers} customers, HubSpot limit {cfg.burst_limit}/10 s)")
        self.fleet.start_sandboxes()
        self.fleet.flush_redis()
        self.fleet.apply_env()
        try:
            self.start_workers()
            self.phase_backfill()
            self.phase_noop_and_delta()
            self.phase_pipeline()
            self.phase_freshness()
            self.phase_scaling()
            self.phase_baseline()
        finally:
            self.stop_beat()
            self.fleet.stop()
            redis.Redis.from_url(REDIS_URL).flushdb()
        self.out["elapsed_s"] = round(time.time() - started, 1)
        return self.out

    def phase_backfill(self) -> None:
        cfg = self.cfg
        stats = self.fresh_shop(cfg.customers)
        self.say(f"backfill: {cfg.customers} customers, then their orders and line items")
        progress: list[tuple[float, int]] = []
        cpu = self.cpu_meter().start()
        t0 = time.time()
        customers = self.backfill("customers", progress)
        orders = self.backfill("orders", progress, base=progress[-1][1] if progress else 0)
        cpu_s = cpu.stop()
        t_customers = float(customers["finished_at"])
        t1 = float(orders["finished_at"])
        calls = self.phase_calls("backfill")
        log = sb.entries(self.hs, since=t0 - 1, capacity=LOG_CAPACITY)
        writes = [e["ts"] for e in log if is_write(e["method"], e["endpoint"]) and budget_of(e["endpoint"]) == "burst"
                  and e["status"] < 400]
        burst = [e["ts"] for e in log if budget_of(e["endpoint"]) == "burst"]
        contacts = sb.hubspot_objects(self.hs, "contacts")
        hs_orders = sb.hubspot_objects(self.hs, "orders")
        line_items = sb.hubspot_objects(self.hs, "line_items")
        order_keys, order_dups = sb.key_census(hs_orders, "ct_order_id")
        item_keys, item_dups = sb.key_census(line_items, "ct_line_item_id")
        expected_orders, expected_items = self.ct_orders()
        verify = self.verify()
        records = int(customers["extracted"]) + int(orders["extracted"]) + len(item_keys)
        window = steady_window(writes)
        self.out["phases"]["backfill"].update({
            "seconds": round(t1 - t0, 1), "customers_seconds": round(t_customers - t0, 1),
            "customers_run": customers, "orders_run": orders, "ct_stats": stats.get("counts", stats),
            "records": records, "contacts": len(contacts), "orders": len(order_keys), "line_items": len(item_keys),
            "steady_window_s": [round(window[0] - t0, 1), round(window[1] - t0, 1)] if window else None,
            "steady_burst_calls_per_10s": round(rate_per_window(burst, *window), 1) if window else None,
            "max_calls_in_any_10s": max_rolling(burst),
            "duplicates": {"contacts": len(verify.duplicates), "orders": order_dups, "line_items": item_dups},
            "lost": {"customers": len(verify.missing), "company_links": len(verify.unlinked),
                     "orders": len(expected_orders - order_keys),
                     "line_items": len(expected_items - item_keys)},
            "mismatched_contact_fields": len(verify.mismatched),
            "failed_records": int(customers["failed"]) + int(orders["failed"]),
            "cpu_s": cpu_s,
        })
        self.out["figures_raw"] = {
            "limit_utilization": limit_utilization(writes, cfg.burst_limit),
            "budget_utilization": (rate_per_window(burst, *window) / cfg.burst_limit) if window else None,
            "records_per_s": records / (t1 - t0),
            "backfill_calls_per_record": ratio(calls.burst, records),
            "backfill_write_calls_per_record": ratio(calls.burst_writes, records),
            "backfill_all_calls_per_record": ratio(calls.total, records),
        }
        self.out["timeline"] = {"t0": t0, "progress": [(round(t - t0, 2), n) for t, n in progress],
                                "calls": [(round(e["ts"] - t0, 3), e["status"], budget_of(e["endpoint"]))
                                          for e in log]}

    def ct_orders(self) -> tuple[set[str], set[str]]:
        from sync_tasks.commercetools_client import CommercetoolsClient
        from sync_tasks.pagination import KeysetPaginator
        from sync_tasks.settings import get_settings

        ct = CommercetoolsClient(get_settings())
        orders, items = set(), set()
        for page in KeysetPaginator(ct, "orders"):
            for order in page:
                orders.add(order["id"])
                items |= {f"order:{order['id']}:{li['id']}" for li in order.get("lineItems", [])}
        sb.reset_log(self.ct)
        return orders, items

    def verify(self) -> Any:
        from sync_tasks.commercetools_client import CommercetoolsClient
        from sync_tasks.settings import get_settings
        from sync_tasks.verify import verify_contacts

        settings = get_settings()
        report = verify_contacts(CommercetoolsClient(settings), self.hs, settings.shared_fields_rule)
        sb.reset_log(self.ct)
        return report

    def phase_noop_and_delta(self) -> None:
        """The first delta after a backfill re-reads the whole shop (no watermark yet) with nothing
        changed: the strictest no-op. Then `delta_changes` customers change and one delta runs."""
        self.say("no-op delta (customers and orders, nothing changed)")
        sb.reset_log(self.hs)
        noop = {e: self.delta(e) for e in ("customers", "orders")}
        calls = self.phase_calls("noop_delta")
        self.out["phases"]["noop_delta"].update({"runs": noop})
        self.out["figures_raw"]["noop_delta_write_calls"] = calls.writes
        self.say(f"delta: {self.cfg.delta_changes} customers changed")
        sb.reset_log(self.hs)
        touched = sb.touch(self.ct, count=self.cfg.delta_changes)
        run = self.delta("customers")
        calls = self.phase_calls("delta")
        self.out["phases"]["delta"].update({"run": run, "changed": len(touched)})
        self.out["figures_raw"]["delta_calls_per_record"] = ratio(calls.burst, len(touched))
        self.out["figures_raw"]["delta_write_calls_per_record"] = ratio(calls.burst_writes, len(touched))

    def phase_pipeline(self) -> None:
        from bench.pipeline import measure
        from sync_tasks.commercetools_client import CommercetoolsClient
        from sync_tasks.pagination import KeysetPaginator
        from sync_tasks.settings import get_settings

        settings = get_settings()
        ct = CommercetoolsClient(settings)
        records: list[dict[str, Any]] = []
        for page in KeysetPaginator(ct, "customers", expand=["customerGroup"]):
            records += page
            if len(records) >= self.cfg.pipeline_records:
                break
        records = records[:self.cfg.pipeline_records]
        self.say(f"pipeline CPU: match, map and serialisation of {len(records)} customers (no HTTP)")
        result = measure(records, self.state(), settings.shared_fields_rule)
        self.out["phases"]["pipeline"] = {"records": result.records, "cpu_s": round(result.cpu_s, 3),
                                          "wall_s": round(result.wall_s, 3), "planned": result.planned}
        self.out["figures_raw"]["pipeline_records_per_s_per_core"] = result.records_per_cpu_s

    def phase_freshness(self) -> None:
        """Beat runs at SYNC_INTERVAL; customers change a few at a time, spread over several
        intervals; each change's freshness is the contact's firstname history timestamp minus the
        customer's lastModifiedAt."""
        from sync_tasks.constants import Keys
        from sync_tasks.extract import parse_ts
        from sync_tasks.redis_conn import get_redis

        cfg = self.cfg
        self.say(f"freshness: {cfg.freshness_changes} changes at SYNC_INTERVAL={cfg.sync_interval}s")
        sb.reset_log(self.hs)
        self.beat = self.fleet.start_beat()
        time.sleep(2)
        spread = cfg.sync_interval * 3  # changes land at every phase of the interval
        per_step, steps = 2, max(1, cfg.freshness_changes // 2)
        touched: list[dict[str, Any]] = []
        for _ in range(steps):
            touched += sb.touch(self.ct, count=per_step)
            time.sleep(spread / steps)
        ids = {t["id"]: t for t in touched}  # a customer touched twice counts with its last change
        r = get_redis()
        deadline = time.time() + cfg.sync_interval * 3 + 120
        lags: dict[str, float] = {}
        while time.time() < deadline and len(lags) < len(ids):
            for cid, t in ids.items():
                if cid in lags:
                    continue
                hs_id = r.hget(Keys.idmap("contacts"), cid)
                if not hs_id:
                    continue
                contact = sb.hubspot_contact(self.hs, str(hs_id))
                history = contact.get("propertiesWithHistory", {}).get("firstname", [])
                changed = parse_ts(t["lastModifiedAt"])
                # The first write of firstname at or after the change (history lists newest first).
                after = [parse_ts(h["timestamp"]) for h in history if parse_ts(h["timestamp"]) >= changed]
                if after:
                    lags[cid] = (min(after) - changed).total_seconds()
            time.sleep(1.0)
        self.stop_beat()
        self.phase_calls("freshness")
        values = list(lags.values())
        self.out["phases"]["freshness"].update({
            "changes": len(ids), "measured": len(values), "not_seen": len(ids) - len(values),
            "p50_s": percentile(values, 50), "max_s": max(values) if values else None})
        self.out["figures_raw"]["freshness_p95_s"] = percentile(values, 95) if len(values) == len(ids) else None
        self.out["figures_raw"]["freshness_p95_measured_s"] = percentile(values, 95)

    def phase_scaling(self) -> None:
        small, large = self.cfg.scaling_sizes
        result: dict[str, Any] = {}
        ids: list[str] | None = None
        for size in (small, large):
            self.say(f"delta scaling: backfill a {size}-customer shop")
            self.fresh_shop(size)
            t0 = time.time()
            with RssSampler(self.workers) as rss:
                run = self.backfill("customers")
            seconds = time.time() - t0
            calls = self.phase_calls(f"backfill_{size}")
            verify = self.verify()
            self.delta("customers")  # the first delta sets the watermark (a full re-read, nothing written)
            sb.reset_log(self.hs)
            sb.reset_log(self.ct)
            same_ids = ids is not None
            try:
                touched = sb.touch(self.ct, ids=ids) if ids else sb.touch(self.ct, count=self.cfg.delta_changes)
            except requests.HTTPError:  # the small shop's customers are not all in the large one
                same_ids = False
                touched = sb.touch(self.ct, count=self.cfg.delta_changes)
            ids = ids or [t["id"] for t in touched]
            delta = self.delta("customers")
            hs_calls = self.phase_calls(f"delta_{size}")
            ct_calls = sb.total_requests(self.ct)
            # A 200-customer delta takes a fraction of a second, where one scheduling hiccup on this
            # 2-core machine is a large share: the same change is made and synced again, and the
            # median of the rounds is the figure (every round is reported).
            rounds = [float(delta["seconds"])]
            for _ in range(SCALING_ROUNDS - 1):
                sb.touch(self.ct, ids=ids)
                rounds.append(float(self.delta("customers")["seconds"]))
            result[str(size)] = {"hubspot_calls": hs_calls.total, "commercetools_calls": ct_calls,
                                 "seconds": round(statistics.median(rounds), 3),
                                 "seconds_rounds": [round(x, 3) for x in rounds], "changed": len(touched),
                                 "updated": int(delta["updated"]), "extracted": int(delta["extracted"]),
                                 "backfill_seconds": round(seconds, 1), "backfill_records": int(run["extracted"]),
                                 "backfill_calls": calls.as_dict(), "peak_rss_mb": dict(rss.peak_mb),
                                 "duplicates": len(verify.duplicates),
                                 "lost": len(verify.missing) + len(verify.unlinked),
                                 "same_customers_as_small_shop": same_ids}
        s, big = result[str(small)], result[str(large)]
        result["ratio"] = {k: ratio(big[k], s[k]) for k in ("hubspot_calls", "commercetools_calls", "seconds")}
        self.out["phases"]["delta_scaling"] = result
        self.out["figures_raw"]["delta_scaling"] = result["ratio"]
        self.out["figures_raw"]["peak_rss_mb"] = {k: round(v, 1) for k, v in big["peak_rss_mb"].items()}

    def phase_baseline(self) -> None:
        """The same backfill (the first shop's customers, in backfill order) through the baseline, time-boxed."""
        from bench import baseline
        from sync_tasks.commercetools_client import CommercetoolsClient
        from sync_tasks.pagination import KeysetPaginator
        from sync_tasks.settings import get_settings

        cfg = self.cfg
        self.say(f"baseline: one call per record through the HubSpot SDK, {cfg.baseline_seconds:.0f} s sample")
        self.fresh_shop(cfg.customers)
        self.fleet.stop_processes()  # the product's workers stop; the baseline gets the machine
        rate = baseline.per_worker_rate(cfg.burst_limit, cfg.workers)
        env = {**self.fleet.env(), "BENCH_BASELINE_RATE": rate}
        log = open(self.fleet.log_dir / "baseline.log", "ab")  # noqa: SIM115 - closed with the children
        procs = [subprocess.Popen([sys.executable, "-m", "celery", "-A", "bench.baseline", "worker", "-n",
                                   f"baseline{i}@%h", "-Q", baseline.QUEUE, "-c", str(cfg.concurrency),
                                   "--without-mingle", "--without-gossip", "--loglevel", "WARNING"],
                                  env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
                 for i in range(cfg.workers)]
        try:
            wanted = int(cfg.burst_limit / 10 * cfg.baseline_seconds * 3) + 100  # never runs dry in the box
            ct = CommercetoolsClient(get_settings())
            sent = 0
            baseline.app.control.ping(timeout=5.0)
            time.sleep(5)
            t0 = time.time()
            for page in KeysetPaginator(ct, "customers", expand=["customerGroup"]):
                for record in page:
                    baseline.create_contact.apply_async((record,), queue=baseline.QUEUE)
                    sent += 1
                if sent >= wanted:
                    break
            time.sleep(max(0.0, t0 + cfg.baseline_seconds - time.time()))
            t1 = time.time()
            r = redis.Redis.from_url(REDIS_URL, decode_responses=True)
            done = [float(x) for x in r.lrange(baseline.OK_KEY, 0, -1)]
            in_box = sum(1 for x in done if t0 <= x <= t1)
            counts = {k: int(v) for k, v in r.hgetall(baseline.COUNT_KEY).items()}
        finally:
            for proc in procs:
                os.killpg(proc.pid, signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=30)
            log.close()
        calls = self.phase_calls("baseline")
        self.out["phases"]["baseline"].update({"seconds": round(t1 - t0, 1), "records": in_box, "sent": sent,
                                               "per_worker_rate_limit": rate, "counts": counts,
                                               "throttled_ratio": ratio(calls.throttled, calls.total)})
        self.out["figures_raw"]["baseline_records_per_s"] = in_box / (t1 - t0)
        # The baseline's own 429s are its result, not the product's: `figures` keeps them out of throttled_ratio.
        self.out["baseline_calls"] = calls.as_dict()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the smaller run (under 5 minutes)")
    parser.add_argument("--customers", type=int, help="customers of the backfill shop")
    parser.add_argument("--limit", type=int, help="HubSpot burst limit per 10 s (sandbox and fleet)")
    parser.add_argument("--interval", type=int, help="SYNC_INTERVAL of the freshness phase")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    cfg = replace(cfg, customers=args.customers or cfg.customers, burst_limit=args.limit or cfg.burst_limit,
                  sync_interval=args.interval or cfg.sync_interval)
    from bench.report import write_all

    out = Bench(cfg, Path("var/log/bench")).run()
    out["figures"] = figures(out, cfg)
    paths = write_all(out, args.out)
    print("\n".join(str(p) for p in paths))
    print(Path(paths[1]).read_text())
    return 0


def figures(out: dict[str, Any], cfg: BenchConfig) -> dict[str, Any]:
    raw = out["figures_raw"]
    phases = out["phases"]
    product_calls = [CallCounts(**v["hubspot_calls"]) for k, v in phases.items()
                     if k != "baseline" and "hubspot_calls" in v]
    total = sum(product_calls, CallCounts())
    baseline_rate = raw.get("baseline_records_per_s") or 0.0
    dup = {"backfill": sum(phases["backfill"]["duplicates"].values())}
    lost = {"backfill": sum(phases["backfill"]["lost"].values())}
    for size in cfg.scaling_sizes:
        dup[f"backfill_{size}"] = phases["delta_scaling"][str(size)]["duplicates"]
        lost[f"backfill_{size}"] = phases["delta_scaling"][str(size)]["lost"]
    fresh = phases["freshness"]
    lost["freshness"] = fresh["not_seen"]
    return {
        "limit_utilization": raw["limit_utilization"],
        "budget_utilization": raw["budget_utilization"],
        "throttled_ratio": ratio(total.throttled, total.total),
        "records_per_s": raw["records_per_s"],
        "theoretical_max_records_per_s": theoretical_max_records_per_s(cfg.burst_limit),
        "calls_per_record": {"backfill": raw["backfill_calls_per_record"], "delta": raw["delta_calls_per_record"],
                             "backfill_writes_only": raw["backfill_write_calls_per_record"],
                             "delta_writes_only": raw["delta_write_calls_per_record"]},
        "min_calls_per_record": min_calls_per_record(),
        "noop_delta_write_calls": raw["noop_delta_write_calls"],
        "delta_scaling": raw["delta_scaling"],
        "freshness_p95_s": raw["freshness_p95_s"],
        "pipeline_records_per_s_per_core": raw["pipeline_records_per_s_per_core"],
        "peak_rss_mb": raw["peak_rss_mb"],
        "baseline_records_per_s": baseline_rate,
        "baseline_speedup": raw["records_per_s"] / baseline_rate if baseline_rate else None,
        "duplicates": dup,
        "lost": lost,
    }


if __name__ == "__main__":
    sys.exit(main())
