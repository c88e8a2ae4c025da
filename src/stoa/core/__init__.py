"""Settings, metadata database, blob store, names and tokens: what every other area builds on."""
