"""Remote write to long-term storage (Mimir, Thanos Receive, Cortex), and the external labels.

Pure functions over the typed config, in two shapes:

* Prometheus's own (`remote_write:` and `global.external_labels` of prometheus.yml), for the Docker
  platform. No credential is written into the file: Prometheus reads each from a file of its own
  (`basic_auth.password_file`, `authorization.credentials_file`); `secret_files()` names those
  files and the secret config value each holds, and the Prometheus component uploads them as
  secret content, as it does the credentials of existing Alertmanagers.
* The Prometheus Operator's camelCase (`remoteWrite` of a Prometheus resource, or
  `prometheus.prometheusSpec.remoteWrite` of kube-prometheus-stack's values), for Kubernetes. The
  operator reads credentials only from a Kubernetes Secret (`SecretKeySelector`s, the username too);
  `operator_secret_data()` says what that Secret must hold.

External labels (`cluster`, `env`) go on every sample sent out and every alert sent to an
Alertmanager. Prometheus adds one only where the series or alert has no label of that name, so a
label a series already carries wins.
"""

from __future__ import annotations

from typing import Any

from . import topology as t
from .config import RemoteWrite, RemoteWriteQueue, StackConfig


def external_labels(cfg: StackConfig) -> dict[str, str]:
    """`global.external_labels`: what tells this stack's samples apart in a store many stacks share."""
    return {"cluster": cfg.prometheus.cluster_label, "env": cfg.env}


def _file(rw: RemoteWrite, what: str) -> str:
    return f"{t.PROMETHEUS_SECRETS_DIR}/remote-write-{rw.position}-{what}"


def _queue(q: RemoteWriteQueue) -> dict:
    return {
        "capacity": q.capacity,
        "max_shards": q.max_shards,
        "min_shards": q.min_shards,
        "max_samples_per_send": q.max_samples_per_send,
        "batch_send_deadline": q.batch_send_deadline,
        "min_backoff": q.min_backoff,
        "max_backoff": q.max_backoff,
    }


def prometheus_remote_write(cfg: StackConfig) -> list[dict]:
    """The `remote_write:` list of prometheus.yml ([] without endpoints)."""
    out = []
    for rw in cfg.prometheus.remote_write:
        entry: dict = {"url": rw.url, "queue_config": _queue(rw.queue)}
        if rw.name:
            entry["name"] = rw.name
        if rw.password_key:
            entry["basic_auth"] = {"username": rw.username, "password_file": _file(rw, "password")}
        if rw.bearer_token_key:
            entry["authorization"] = {"type": "Bearer", "credentials_file": _file(rw, "token")}
        out.append(entry)
    return out


def secret_files(cfg: StackConfig) -> dict[str, Any]:
    """Path inside the Prometheus container -> the secret config value it holds."""
    out: dict[str, Any] = {}
    for rw in cfg.prometheus.remote_write:
        if rw.password_key:
            out[_file(rw, "password")] = rw.password
        if rw.bearer_token_key:
            out[_file(rw, "token")] = rw.bearer_token
    return out


# --- the Prometheus Operator's shape -----------------------------------------------------------------


def _secret_key(rw: RemoteWrite, what: str) -> str:
    return f"remote-write-{rw.position}-{what}"


def operator_remote_write(cfg: StackConfig, secret_name: str) -> list[dict]:
    """`remoteWrite` of a Prometheus resource (monitoring.coreos.com/v1 RemoteWriteSpec), with every
    credential read from the Kubernetes Secret `secret_name` (holding `operator_secret_data()`)."""
    out = []
    for rw in cfg.prometheus.remote_write:
        q = rw.queue
        entry: dict = {
            "url": rw.url,
            "queueConfig": {
                "capacity": q.capacity,
                "maxShards": q.max_shards,
                "minShards": q.min_shards,
                "maxSamplesPerSend": q.max_samples_per_send,
                "batchSendDeadline": q.batch_send_deadline,
                "minBackoff": q.min_backoff,
                "maxBackoff": q.max_backoff,
            },
        }
        if rw.name:
            entry["name"] = rw.name
        if rw.password_key:
            entry["basicAuth"] = {
                "username": {"name": secret_name, "key": _secret_key(rw, "username")},
                "password": {"name": secret_name, "key": _secret_key(rw, "password")},
            }
        if rw.bearer_token_key:
            entry["authorization"] = {"type": "Bearer", "credentials": {"name": secret_name, "key": _secret_key(rw, "token")}}
        out.append(entry)
    return out


def operator_secret_data(cfg: StackConfig) -> dict[str, Any]:
    """Key -> value of the Secret `operator_remote_write()` refers to. The operator reads a basic-auth
    username from a Secret too, so the (plain) username is there beside its password handle."""
    out: dict[str, Any] = {}
    for rw in cfg.prometheus.remote_write:
        if rw.password_key:
            out[_secret_key(rw, "username")] = rw.username
            out[_secret_key(rw, "password")] = rw.password
        if rw.bearer_token_key:
            out[_secret_key(rw, "token")] = rw.bearer_token
    return out
