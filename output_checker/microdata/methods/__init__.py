"""Anonymisation methods that return modified copies of microdata."""
