"""The llms gateway benchmark: a fake upstream, a checking load generator and a report.

Run ``python -m bench`` (or ``--quick``); see bench/__main__.py.
"""
