"""What every step shares: errors, the file layout of a step's folder, reuse keys
(digests), the cached step that records `result.json`, and labelled data loading."""
