"""Build: train and compare candidates, knowledge bases, solutions."""
