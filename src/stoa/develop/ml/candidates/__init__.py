"""Candidate kinds for model selection: one interface, one contract test."""
