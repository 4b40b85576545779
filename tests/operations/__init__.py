"""Running it: settings and checks, logs, metrics, health checks, secrets kept out."""
