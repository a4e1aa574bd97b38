"""Synthetic data for demonstrations, tests and benchmarks (pure: no I/O)."""

from enclave.synth.microdata import generate

__all__ = ["generate"]
