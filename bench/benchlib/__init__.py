"""Helpers of the bench scripts (not a bench: ``make bench`` runs ``bench/*.py`` only)."""
