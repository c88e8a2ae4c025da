"""Train, evaluate and select models: from TF-IDF to MiniLM heads to zero-shot."""
