"""Contracts shared by the webhook services."""
