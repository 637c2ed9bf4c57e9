"""Pure, Pulumi-free code: typed config, and the renderers for the Mistral.rs command line,
Prometheus config and rules, and Grafana dashboards. Everything here can be run and tested on its own."""
