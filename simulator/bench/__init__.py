"""The benchmark of issue 8 ("Hold a district's worst hour"): the real daemon, real
Mosquitto, real databases and the local Twilio sink, driven by fast publishers, beside
baselines measured on the same broker in the same run. ``make bench`` runs it; see
:mod:`simulator.bench.cli` for the options and docs/benchmarks.md for the figures."""
