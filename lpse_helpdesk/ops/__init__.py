"""Running it as a service: roles across instances, status, health and metrics, backups,
retention of personal data."""
