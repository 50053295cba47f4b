"""A generated hashtag-like task: a thousand classes with Zipf frequencies, a few per sample."""
