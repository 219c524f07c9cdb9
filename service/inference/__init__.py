"""The inference front end every front door shares: admission, the batcher, answers, metrics."""
