"""The several-replicas topology on one machine: `python -m cluster.run` (see run.py)."""
