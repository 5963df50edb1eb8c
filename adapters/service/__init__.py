"""lowcarb integration package (being written)."""
