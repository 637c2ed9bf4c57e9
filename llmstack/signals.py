"""The shared, engine-neutral metric catalogue: the `llm:*` names every dashboard, alert and test queries.

Recording rules map each engine's raw metrics into these series (llmstack/engines/), each labelled
`engine` (mistralrs, ollama, ...), `env`, `instance` and `model`; the resource series come from the
exporters beside the engine (llmstack/resources.py). A dashboard or alert that queries only these
names works for every engine that has a mapping.

This module only names the series and says what they mean and in which unit; how each one is
computed lives with the engine mappings and the resource records.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import config

# Labels every shared-schema series carries, and the grouping every engine record uses.
SCHEMA_LABELS = ("engine", "env", "instance", "model")
BY = ", ".join(SCHEMA_LABELS)

# The window of every rate and quantile in the catalogue (`rate5m`), and the alerts' short window
# (the `1m` twins below). config.py owns them, because it bounds the intervals by them.
WINDOW, SHORT_WINDOW = config.WINDOW, config.SHORT_WINDOW


@dataclass(frozen=True)
class Signal:
    name: str
    unit: str  # a Grafana unit id
    description: str


def _s(name: str, unit: str, description: str) -> Signal:
    return Signal(name, unit, description)


# --- inference KPIs ---------------------------------------------------------------------------
REQUESTS_RATE = _s("llm:requests:rate5m", "reqps", "Inference requests per second (API routes only).")
ERRORS_RATE = _s("llm:request_errors:rate5m", "reqps", "Inference requests per second that ended in a 5xx.")
ERROR_RATIO = _s("llm:request_error_ratio:rate5m", "percentunit", "Share of inference requests that ended in a 5xx.")
LATENCY_AVG = _s("llm:request_latency_seconds:avg5m", "s", "Mean end-to-end request latency.")
LATENCY_P50 = _s("llm:request_latency_seconds:p50_5m", "s", "Median end-to-end request latency.")
LATENCY_P95 = _s("llm:request_latency_seconds:p95_5m", "s", "95th percentile end-to-end request latency.")
LATENCY_P99 = _s("llm:request_latency_seconds:p99_5m", "s", "99th percentile end-to-end request latency.")
TTFT_P95 = _s("llm:ttft_seconds:p95_5m", "s", "95th percentile time to first token (streamed requests).")
ITL_P95 = _s("llm:itl_seconds:p95_5m", "s", "95th percentile inter-token latency (streamed requests).")
TOKENS_PROCESSED_RATE = _s("llm:tokens_processed:rate5m", "short", "Tokens processed per second, prompt plus generated.")
TOKENS_GENERATED_RATE = _s("llm:tokens_generated:rate5m", "short", "Generated (completion) tokens per second.")
IN_FLIGHT = _s("llm:requests_in_flight", "short", "HTTP requests being served right now.")
QUEUE_DEPTH = _s("llm:queue_depth", "short", "Requests waiting for a sequence slot.")
RUNNING = _s("llm:sequences_running", "short", "Sequences being decoded right now.")
CAPACITY = _s("llm:sequences_capacity", "short", "The most sequences the engine runs at once.")
KV_CACHE_UTILISATION = _s("llm:kv_cache_utilisation:ratio", "percentunit", "Share of KV-cache blocks in use.")
PREEMPTIONS_RATE = _s("llm:preemptions:rate5m", "short", "Sequences preempted per second for lack of KV cache.")
RESTARTS = _s("llm:restarts:resets5m", "short", "Server restarts seen in the last 5 minutes, as resets of its request counter (0 when none).")
PREFIX_CACHE_HIT_RATIO = _s("llm:prefix_cache_hit_ratio:rate5m", "percentunit", "Share of prefix-cache lookups that hit.")
MODEL_LOAD_SECONDS = _s("llm:model_load_seconds", "s", "Seconds from container start until the server first answered a scrape (model download and load).")

# --- resources (cAdvisor, DCGM) ----------------------------------------------------------------
GPU_UTILISATION = _s("llm:gpu_utilisation:ratio", "percentunit", "GPU utilisation, per GPU.")
GPU_MEMORY_USED = _s("llm:gpu_memory_used_bytes", "bytes", "GPU framebuffer memory in use, per GPU.")
GPU_MEMORY_TOTAL = _s("llm:gpu_memory_total_bytes", "bytes", "GPU framebuffer memory in total, per GPU.")
GPU_TEMPERATURE = _s("llm:gpu_temperature_celsius", "celsius", "GPU temperature, per GPU.")
GPU_POWER = _s("llm:gpu_power_watts", "watt", "GPU power draw, per GPU.")
CONTAINER_CPU = _s("llm:container_cpu_cores:rate5m", "short", "CPU cores used, per stack container.")
CONTAINER_MEMORY = _s("llm:container_memory_working_set_bytes", "bytes", "Memory working set, per stack container.")
CONTAINER_MEMORY_LIMIT = _s("llm:container_memory_limit_bytes", "bytes", "Memory limit, per stack container; for a container without a limit, the host's memory.")

# --- black-box probes (llmstack/probes.py), labelled like the engine series plus `probe` -----------
PROBE_SUCCESS_RATIO = _s("llm:probe_success:ratio5m", "percentunit", "Share of black-box probes that succeeded (a real one-token generation, or /health), per probe.")
PROBE_SUCCESS_1M = _s("llm:probe_success:max1m", "none", "1 if any probe of its kind succeeded in the last minute, else 0 (alerting).")
PROBE_DURATION = _s("llm:probe_duration_seconds", "s", "How long the last black-box probe took, queueing included.")

# --- fleet records (llmstack/fleet.py): one series per engine, env and model, over every instance ---
# Sums where a sum means something; for latencies and the KV cache, which do not add up across
# instances, the worst instance (`max_`).
FLEET_BY = "engine, env, model"
FLEET_INSTANCES = _s("llm:fleet_instances", "short", "Instances with a request rate: the size of the fleet.")
FLEET_REQUESTS_RATE = _s("llm:fleet_requests:rate5m", "reqps", "Inference requests per second, the whole fleet.")
FLEET_ERRORS_RATE = _s("llm:fleet_request_errors:rate5m", "reqps", "Inference requests per second that ended in a 5xx, the whole fleet.")
FLEET_ERROR_RATIO = _s("llm:fleet_request_error_ratio:rate5m", "percentunit", "Share of the fleet's inference requests that ended in a 5xx.")
FLEET_TOKENS_PROCESSED_RATE = _s("llm:fleet_tokens_processed:rate5m", "short", "Tokens processed per second, prompt plus generated, the whole fleet.")
FLEET_TOKENS_GENERATED_RATE = _s("llm:fleet_tokens_generated:rate5m", "short", "Generated (completion) tokens per second, the whole fleet.")
FLEET_IN_FLIGHT = _s("llm:fleet_requests_in_flight", "short", "HTTP requests being served right now, the whole fleet.")
FLEET_QUEUE_DEPTH = _s("llm:fleet_queue_depth", "short", "Requests waiting for a sequence slot, the whole fleet.")
FLEET_RUNNING = _s("llm:fleet_sequences_running", "short", "Sequences being decoded right now, the whole fleet.")
FLEET_CAPACITY = _s("llm:fleet_sequences_capacity", "short", "The most sequences the fleet runs at once.")
FLEET_LATENCY_P95_MAX = _s("llm:fleet_request_latency_seconds:max_p95_5m", "s", "95th percentile end-to-end request latency of the worst instance.")
FLEET_TTFT_P95_MAX = _s("llm:fleet_ttft_seconds:max_p95_5m", "s", "95th percentile time to first token of the worst instance.")
FLEET_ITL_P95_MAX = _s("llm:fleet_itl_seconds:max_p95_5m", "s", "95th percentile inter-token latency of the worst instance.")
FLEET_KV_CACHE_MAX = _s("llm:fleet_kv_cache_utilisation:max_ratio", "percentunit", "Share of KV-cache blocks in use on the fullest instance.")

# --- short-window twins, read only by the alerts (llmstack/alerts/inference.py explains why) -----
LATENCY_P95_1M = _s("llm:request_latency_seconds:p95_1m", "s", "95th percentile end-to-end request latency over 1 minute (alerting).")
TTFT_P95_1M = _s("llm:ttft_seconds:p95_1m", "s", "95th percentile time to first token over 1 minute (streamed requests; alerting).")
PREEMPTIONS_RATE_1M = _s("llm:preemptions:rate1m", "short", "Sequences preempted per second over 1 minute (alerting).")
ERROR_RATIO_1M = _s("llm:request_error_ratio:rate1m", "percentunit", "Share of inference requests that ended in a 5xx over 1 minute (alerting).")

# --- service level objectives (llmstack/slo.py) ---------------------------------------------------
SLO_LATENCY_REQUESTS_RATE = _s(
    "llm:slo_latency_requests:rate5m", "reqps", "Inference requests per second the latency histogram counted (the latency SLO's total)."
)
SLO_LATENCY_SLOW_RATE = _s(
    "llm:slo_latency_slow:rate5m", "reqps", "Of those, requests per second slower than the latency SLO's threshold (its bad events)."
)
# The SRE workbook's alerting windows. Each burn-rate record is labelled `slo` (availability, latency).
SLO_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
SLO_BURN_RATES = {
    w: _s(f"llm:slo_burn_rate:{w}", "none", f"How fast the SLO's error budget burns over {w}: the share of bad requests over the budget's share (1: the budget lasts exactly its 30 days).")
    for w in SLO_WINDOWS
}
# The same over every instance serving one model (labels engine, env, model, slo), for the page's windows.
FLEET_BY = "engine, env, model"
SLO_FLEET_WINDOWS = ("5m", "30m", "1h", "6h")
SLO_FLEET_BURN_RATES = {
    w: _s(f"llm:slo_burn_rate_fleet:{w}", "none", f"How fast the fleet's error budget burns over {w}: every instance serving the model together.")
    for w in SLO_FLEET_WINDOWS
}

# --- helpers of the resource records and alerts ------------------------------------------------
LOAD_START = _s(
    "llm:mistral_load_start_timestamp_seconds",
    "dateTimeAsIso",
    "Creation time of the current mistral container, recorded only when Prometheus saw the container "
    "soon enough after its creation to time its model load.",
)
READY = _s("llm:mistral_ready_timestamp_seconds", "dateTimeAsIso", "When the current mistral container first answered a scrape: its model was loaded.")
GPU_LAST_XID = _s(
    "llm:gpu_last_xid",
    "none",
    "The last XID error the GPU driver reported, per GPU (0: none). The DCGM exporter keeps it until it restarts.",
)
TSDB_RETENTION_USED = _s(
    "llm:prometheus_tsdb_retention_used:ratio",
    "percentunit",
    "Prometheus's TSDB on disk (blocks, WAL, head chunks) against its retention size.",
)

ALL = tuple(v for v in list(globals().values()) if isinstance(v, Signal)) + tuple(SLO_BURN_RATES.values()) + tuple(SLO_FLEET_BURN_RATES.values())
