"""Benchmarks for seqkit and seqlint: `python -m benchmarks [NAMES...]` (see __main__)."""
