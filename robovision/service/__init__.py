"""The live detection service: capture thread, inference loop, socket publisher, status, systemd glue."""
