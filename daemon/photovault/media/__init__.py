"""Media stage: decode photos and read their metadata."""
