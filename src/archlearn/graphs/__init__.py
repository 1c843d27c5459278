"""archlearn.graphs."""
