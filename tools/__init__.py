"""Generators and measurements that sit beside the program: renders of the committed files, the
docs' tables, detection times. Nothing on the deploy path (`program`, `components`, `llmstack`)
imports this package."""
