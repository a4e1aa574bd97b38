"""Revisions of the review queue schema."""
