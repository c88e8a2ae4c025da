"""``stoa demo``: the whole lifecycle on embedded defaults, grown by every capability."""
