#!/usr/bin/env python3
"""Series stored per mistral.rs instance, before and after the stack's relabelling and dropping.

A FakeMistral (tests/integration/fakes, mistral.rs's exact exposition) is driven through every
scenario, so every label combination exists (status 200 and 500, completion reasons stop and error,
the preemption counter...). A real Prometheus (/usr/bin/prometheus, 127.0.0.1, free port, temp data
dir) then scrapes it with the `mistral` job exactly as llmstack/prometheus.py renders it, only the
target address pointed at the fake and the interval shortened to finish quickly; the counts come
from its API:

- before: `scrape_samples_scraped` (every sample line of the exposition is one series);
- after: `scrape_samples_post_metric_relabeling` and `count({job="mistral"})` minus the five
  series Prometheus adds per target (up, scrape_*);
- the stored label sets from /api/v1/series, compared one for one with bench/_common.Scrape, the
  Python emulation of the same relabelling that the other benches use to shape their inputs.

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
    Prometheus, Scrape, add_docs_argument, exit_on_sigterm, fingerprint, parse_exposition, series_key, wait_until, publish,
)
from llmstack import engines, prometheus as promcfg  # noqa: E402
from llmstack.config import load_defaults  # noqa: E402
from tests.integration.fakes.mistral import SCENARIOS, UPSTREAM_MAIN, UPSTREAM_V092, FakeMistral  # noqa: E402

# Per-target series Prometheus writes itself (2.42 and 3.x without extra scrape metrics).
SYNTHETIC = ("up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling", "scrape_series_added")
SCRAPE_INTERVAL = "1s"


def drive(fake: FakeMistral, scenarios, seconds_each: float) -> None:
    for scenario in scenarios:
        fake.set_scenario(scenario)
        fake.advance(seconds_each)


def bench_config(cfg, address: str) -> str:
    """The rendered prometheus.yml with only the mistral job, pointed at the fake, scraping fast."""
    doc = yaml.safe_load(promcfg.render_prometheus_yml(cfg, mistral_target=address, rule_files=[]))
    doc["global"].update({"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL})
    doc["scrape_configs"] = [j for j in doc["scrape_configs"] if j["job_name"] == engines.MISTRAL_JOB]
    return yaml.safe_dump(doc, sort_keys=True)


def by_name(series) -> dict[str, int]:
    out: dict[str, int] = {}
    for labels in series:
        out[labels["__name__"]] = out.get(labels["__name__"], 0) + 1
    return dict(sorted(out.items()))


def measure(cfg, upstream: str, workdir: str) -> dict:
    fake = FakeMistral(model=cfg.mistral.model_id, capacity=cfg.mistral.max_seqs, upstream=upstream)
    # Healthy alone first: the steady state most scrapes see.
    drive(fake, ["healthy"], 60)
    healthy_exposition = fake.exposition()
    drive(fake, SCENARIOS, 60)
    fake.set_scenario("healthy")
    exposition = fake.exposition()
    fake.start()
    address = f"127.0.0.1:{fake.port}"
    config_text = bench_config(cfg, address)
    scrape = Scrape(config_text, engines.MISTRAL_JOB, address)
    config_file = os.path.join(workdir, f"prometheus-{upstream}.yml")
    with open(config_file, "w") as fh:
        fh.write(config_text)
    server = Prometheus(config_file, os.path.join(workdir, f"data-{upstream}"), os.path.join(workdir, f"prometheus-{upstream}.log"))
    try:
        with server:
            job = f'job="{engines.MISTRAL_JOB}"'
            wait_until(lambda: server.metric(f"scrape_series_added{{{job}}}") == 0 and fake.scrapes >= 3, 60, 0.5, "three scrapes")
            before = server.metric(f"scrape_samples_scraped{{{job}}}")
            after = server.metric(f"scrape_samples_post_metric_relabeling{{{job}}}")
            stored_total = server.metric(f"count by (job) ({{{job}}})")
            stored = [s for s in server.api("/api/v1/series", {"match[]": f"{{{job}}}"}) if s["__name__"] not in SYNTHETIC]
    finally:
        fake.close()

    emulated = [labels for labels, _ in scrape.store(exposition)]
    exposed = parse_exposition(exposition)
    same = sorted(map(series_key, stored)) == sorted(map(series_key, emulated))
    if not same:
        missing = {series_key(s) for s in stored} ^ {series_key(s) for s in emulated}
        raise AssertionError(f"the Python relabelling emulation disagrees with Prometheus on: {sorted(missing)[:5]}")
    if int(before) != len(exposed):
        raise AssertionError(f"scrape_samples_scraped {before} != {len(exposed)} sample lines")
    return {
        "upstream": upstream,
        "exposition_bytes": len(exposition.encode()),
        "series_before": int(before),
        "series_after": int(after),
        "stored_series_incl_synthetic": int(stored_total),
        "synthetic_series": len(SYNTHETIC),
        "samples_per_scrape_exposed": int(before),
        "samples_per_scrape_stored": int(after),
        "healthy_only_before": len(parse_exposition(healthy_exposition)),
        "healthy_only_after": len(scrape.store(healthy_exposition)),
        "emulation_matches_prometheus": same,
        "before_by_metric": by_name(labels for labels, _ in exposed),
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
    renamed = {engines.MISTRAL_HTTP_PREFIX + n: n for n in engines.MISTRAL_HTTP_METRICS}
    after = {renamed.get(k, k): v for k, v in r["after_by_metric"].items()}
    for name, count in r["before_by_metric"].items():
        shown = f"{name} → {engines.MISTRAL_HTTP_PREFIX}{name}" if name in engines.MISTRAL_HTTP_METRICS else name
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
