"""Disclosure-risk measures for categorical and numeric microdata."""
