"""Measure: feedback and business metrics, review queues, judges and their agreement
with people, A/B decisions, drift and alerts.

The rightmost area: it may read every other one, and nothing imports from it.
"""
