"""The batched population engine: many agents trained as one torch computation."""
