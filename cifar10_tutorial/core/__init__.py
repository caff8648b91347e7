"""The ground floor: the tutorial's numbers, the record files, summaries,
one-line errors, signals and child processes. Imports nothing above it."""
