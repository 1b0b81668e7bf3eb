"""The use case: validation, the request's answer and log line, and the port (store.py) it stores through."""
