"""Developer and demo tools around the pipeline (not part of the library)."""
