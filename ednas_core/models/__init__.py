"""Networks trained from scratch from a genotype."""
