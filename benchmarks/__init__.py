"""Benchmarks: our log and replay against raw SQLite and a raw Python loop (see __main__)."""
