"""How the Mistral.rs server is started, derived from the typed config."""

from __future__ import annotations

from .config import MistralConfig
from .schema import TARGETS

# The Docker network alias the whole stack resolves the server by (the seed's `mistral:` target),
# and where it serves its metrics: one entry of the stack's target table.
NETWORK_ALIAS, _, METRICS_PATH = TARGETS["mistral"]
HEALTH_PATH = "/health"
# The image's HF_HOME: the model cache volume is mounted here.
MODEL_CACHE_PATH = "/data"
HF_TOKEN_ENV = "HF_TOKEN"


def serve_command(cfg: MistralConfig, with_hf_token: bool) -> list[str]:
    """Arguments after the image's `mistralrs` entrypoint.

    Metrics stay on: `/metrics` is served by default on the API port, and this never passes
    `--disable-metrics`.
    """
    # --token-source is a global flag; `cache` (the default) would ignore an HF_TOKEN we pass in.
    args = ["--token-source", f"env:{HF_TOKEN_ENV}" if with_hf_token else "none", "serve"]
    args += ["--port", str(cfg.port), "--host", cfg.host, "--max-seqs", str(cfg.max_seqs)]
    args += ["--paged-attn", cfg.paged_attn]
    if not cfg.uses_gpu:
        args.append("--cpu")
    if cfg.isq != "none":
        args += ["--isq", cfg.isq]
    args += ["-m", cfg.model_id]
    return args
