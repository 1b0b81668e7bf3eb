"""Deployment helpers for deploy.sh (standard library only; never uploaded)."""
