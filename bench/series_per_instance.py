#!/usr/bin/env python3
"""Series stored per mistral.rs instance, as exposed and as the stack's Prometheus stores them.

A FakeMistral (tests/integration/fakes, mistral.rs's exposition) is scraped by a real Prometheus
(/usr/bin/prometheus, 127.0.0.1, free port, temp data dir) with the `mistral` job exactly as
llmstack/prometheus.py renders it, only the target address pointed at the fake and the interval
shortened to finish quickly. The fake serves healthy traffic first, then is driven through every
scenario, so every label combination exists (status 200 and 500, completion reasons stop and error,
the preemption counter...). After each phase, the counts come from Prometheus, for a scrape that
began after the phase ended:

- exposed: `scrape_samples_scraped` (every sample line of the exposition is one series);
- stored: `scrape_samples_post_metric_relabeling`, and `count({job="mistral"})`, which adds the
  series Prometheus writes per target (up, scrape_*);
- per metric: the stored label sets from /api/v1/series.

Run for both upstreams the fake knows: the pinned v0.9.2 and main (which adds the capacity and
pending-admission gauges).

    .venv/bin/python bench/series_per_instance.py [--quick] [--json out.json] [--docs]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import yaml  # noqa: E402

from bench._common import (  # noqa: E402
    SYNTHETIC, add_docs_argument, exit_on_sigterm, fast_scrapes, fingerprint, pointed_at, prometheus, publish, samples, scalar,
    wait_until,
)
from llmstack import prometheus as promcfg  # noqa: E402
from llmstack.config import load_defaults  # noqa: E402
from llmstack.engines import mistralrs  # noqa: E402
from tests.integration.fakes.mistral import SCENARIOS, UPSTREAM_MAIN, UPSTREAM_V092, FakeMistral  # noqa: E402

JOB = mistralrs.JOB


def drive(fake: FakeMistral, scenarios, seconds_each: float) -> None:
    for scenario in scenarios:
        fake.set_scenario(scenario)
        fake.advance(seconds_each)


def bench_config(cfg, address: str) -> dict:
    """The rendered prometheus.yml with only the mistral job, pointed at the fake, scraping every second."""
    doc = yaml.safe_load(promcfg.render_prometheus_yml(cfg))
    return fast_scrapes(doc, [pointed_at(j, address) for j in doc["scrape_configs"] if j["job_name"] == JOB])


def by_name(series) -> dict[str, int]:
    out: dict[str, int] = {}
    for labels in series:
        out[labels["__name__"]] = out.get(labels["__name__"], 0) + 1
    return dict(sorted(out.items()))


def counts_now(server, fake: FakeMistral) -> dict:
    """Prometheus's counts for a scrape of the fake's current state."""
    ended = time.time()
    job = f'job="{JOB}"'
    wait_until(lambda: scalar(server, f"timestamp(up{{{job}}})") > ended, 30, 0.2, "a scrape of the fake's current state")
    exposed = samples(fake.exposition())
    counts = {
        "exposed": int(scalar(server, f"scrape_samples_scraped{{{job}}}")),
        "stored": int(scalar(server, f"scrape_samples_post_metric_relabeling{{{job}}}")),
        "stored_incl_synthetic": int(scalar(server, f"count({{{job}}})")),
        "exposed_by_metric": by_name(s.labels for s in exposed),
    }
    if counts["exposed"] != len(exposed):
        raise AssertionError(f"Prometheus scraped {counts['exposed']} samples, the exposition has {len(exposed)}")
    return counts


def measure(cfg, upstream: str, workdir: str) -> dict:
    fake = FakeMistral(model=cfg.mistral.model_id, capacity=cfg.mistral.max_seqs, upstream=upstream)
    # Healthy alone first: the steady state most scrapes see.
    drive(fake, ["healthy"], 60)
    fake.start()
    try:
        with prometheus(workdir, f"prometheus-{upstream}", bench_config(cfg, f"127.0.0.1:{fake.port}")) as server:
            healthy = counts_now(server, fake)
            drive(fake, SCENARIOS, 60)
            fake.set_scenario("healthy")
            full = counts_now(server, fake)
            stored = [s for s in server.series(f'{{job="{JOB}"}}') if s["__name__"] not in SYNTHETIC]
    finally:
        fake.close()
    return {
        "upstream": upstream,
        "exposition_bytes": len(fake.exposition().encode()),
        "series_before": full["exposed"],
        "series_after": full["stored"],
        "stored_series_incl_synthetic": full["stored_incl_synthetic"],
        "synthetic_series": len(SYNTHETIC),
        "samples_per_scrape_exposed": full["exposed"],
        "samples_per_scrape_stored": full["stored"],
        "healthy_only_before": healthy["exposed"],
        "healthy_only_after": healthy["stored"],
        "before_by_metric": full["exposed_by_metric"],
        "after_by_metric": by_name(stored),
    }


def markdown(results: list[dict]) -> str:
    lines = [
        "| upstream | series before (= samples per scrape exposed) | series after relabel + drop (= samples per scrape stored) "
        "| + per-target synthetic | stored per instance | healthy-only before → after | exposition bytes |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['upstream']} | {r['series_before']} | {r['series_after']} | {r['synthetic_series']} "
            f"| {r['stored_series_incl_synthetic']} | {r['healthy_only_before']} → {r['healthy_only_after']} | {r['exposition_bytes']} |"
        )
    lines += ["", "Per metric family (all scenarios, upstream " + results[0]["upstream"] + "):", "",
              "| metric (as exposed) | before | after |", "|---|---:|---:|"]
    r = results[0]
    renamed = {mistralrs.HTTP_PREFIX + n: n for n in mistralrs.HTTP_METRICS}
    after = {renamed.get(k, k): v for k, v in r["after_by_metric"].items()}
    for name, count in r["before_by_metric"].items():
        shown = f"{name} → {mistralrs.HTTP_PREFIX}{name}" if name in mistralrs.HTTP_METRICS else name
        lines.append(f"| {shown} | {count} | {after.get(name, 0)} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="only the pinned upstream (v0.9.2)")
    ap.add_argument("--json", help="write the results here as JSON")
    add_docs_argument(ap)
    ap.add_argument("--env", default="dev")
    args = ap.parse_args(argv)
    exit_on_sigterm()

    cfg = load_defaults(args.env)
    upstreams = [UPSTREAM_V092] if args.quick else [UPSTREAM_V092, UPSTREAM_MAIN]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-series-") as workdir:
        results = [measure(cfg, u, workdir) for u in upstreams]
    doc = {"measured_against": fingerprint(cfg), "bench": "series_per_instance", "env": args.env, "quick": args.quick, "results": results,
           "elapsed_seconds": round(time.monotonic() - started, 1)}
    report = markdown(results)
    publish(doc, report, args.json, args.docs, "series_per_instance", list(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
