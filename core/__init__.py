"""The HTTP side of the events function: request parsing, Cloud Scheduler, logs."""
