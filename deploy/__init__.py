"""Deployment helpers for deploy.sh (never uploaded).

Standard library only, except `deploy.dsn_check`, which runs the function's own
DSN translation and so needs requirements.txt installed.
"""
