"""Storage backends: where the bytes of a store live (a local directory, S3-compatible storage)."""
