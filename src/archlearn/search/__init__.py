"""archlearn.search."""
