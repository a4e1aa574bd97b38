"""Microdata disclosure-risk measures and anonymisation methods (an sdcMicro alternative)."""
