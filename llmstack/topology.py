"""Where things live: network aliases, ports and paths of every container the stack runs.

The components publish and attach containers by these values, the scrape jobs target them and the
healthchecks probe them, so each is written once, here.
"""

from __future__ import annotations

# (network alias, port, metrics path) of every scrape target the stack runs itself, on its Docker
# network. The mistral alias is what the whole stack resolves the inference server by.
TARGETS = {
    "mistral": ("mistral", 1234, "/metrics"),
    "prometheus": ("prometheus", 9090, "/metrics"),
    "cadvisor": ("cadvisor", 8080, "/metrics"),
    "dcgm": ("dcgm-exporter", 9400, "/metrics"),
    "grafana": ("grafana", 3000, "/metrics"),
    "alertmanager": ("alertmanager", 9093, "/metrics"),
    "blackbox": ("blackbox-exporter", 9115, "/metrics"),
}
# The Docker container names (cAdvisor's `name` label) follow llmstack-<env>-<component>.
STACK_CONTAINERS = ("mistral", "prometheus", "grafana")

# Mistral.rs: `GET /health` answers once the port is bound, which is after the model loaded.
MISTRAL_HEALTH_PATH = "/health"
# The image's HF_HOME: the model cache volume is mounted here.
MISTRAL_MODEL_CACHE_PATH = "/data"
# A readable, stable `instance` for the server instead of its address (which changes with the port).
MISTRAL_INSTANCE = "mistral-inference"

# Prometheus, inside the prom/prometheus image: its config directory and its data directory (the
# image creates /prometheus owned by `nobody`, the user it runs as).
PROMETHEUS_CONFIG_DIR = "/etc/prometheus"
PROMETHEUS_CONFIG_FILE = f"{PROMETHEUS_CONFIG_DIR}/prometheus.yml"
PROMETHEUS_RULES_SUBDIR = "rules"  # relative to the config file, as rule_files are resolved
PROMETHEUS_TSDB_PATH = "/prometheus"

# Prometheus reads the credentials of existing Alertmanagers and remote write endpoints from files
# here (never from its config).
PROMETHEUS_SECRETS_DIR = f"{PROMETHEUS_CONFIG_DIR}/secrets"

# Alertmanager, inside the prom/alertmanager image: config, the credentials its receivers read
# (`*_file` fields), and its data directory (silences and the notification log).
ALERTMANAGER_CONFIG_DIR = "/etc/alertmanager"
ALERTMANAGER_CONFIG_FILE = f"{ALERTMANAGER_CONFIG_DIR}/alertmanager.yml"
ALERTMANAGER_SECRETS_DIR = f"{ALERTMANAGER_CONFIG_DIR}/secrets"
ALERTMANAGER_DATA_PATH = "/alertmanager"

# The blackbox exporter, inside the prom/blackbox-exporter image.
BLACKBOX_CONFIG_FILE = "/etc/blackbox_exporter/config.yml"
BLACKBOX_PROBE_PATH = "/probe"

# Grafana, inside the grafana/grafana image (GF_PATHS_DATA) and its health endpoint.
GRAFANA_DATA_PATH = "/var/lib/grafana"
GRAFANA_HEALTH_PATH = "/api/health"


def address(component: str) -> str:
    """alias:port of a stack container on the stack network."""
    alias, port, _ = TARGETS[component]
    return f"{alias}:{port}"
