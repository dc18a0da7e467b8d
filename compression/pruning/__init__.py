"""Pruning: structured (heads and FFN neurons), vocabulary, and unstructured magnitude."""
