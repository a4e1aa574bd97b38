"""Tests of the microdata risk measures and anonymisation methods."""
