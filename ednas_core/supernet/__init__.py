"""Weight-sharing search networks that run only the sampled operations."""
