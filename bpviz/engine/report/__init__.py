"""What a run says: the JSON-safe report dict and the text `bpviz check` prints."""
