"""`make chaos` and `make soak`: the fault-tolerance harness (`python -m tools.chaos`).

stack (private Kafka + FerretDB, the services supervised), traffic (load, receivers, registry client),
scenario (the chaos run), soak (the bad-input soak), report (verdicts and bench/CHAOS.md). The reduced
runs in tests/integration/test_chaos.py and test_bad_input_soak.py import them from here.
"""
