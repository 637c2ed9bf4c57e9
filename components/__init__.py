"""Pulumi ComponentResources, one per concern. They only wire resources; what goes into them
(commands, rendered config, rules, dashboards) comes from the pure functions in `llmstack/`."""
