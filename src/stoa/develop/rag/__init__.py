"""Knowledge bases: load, chunk, embed, index and retrieve private documents."""
