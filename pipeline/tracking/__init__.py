"""Temporal linking: label propagation over a bounded memory, identities, the per-frame tracker."""
