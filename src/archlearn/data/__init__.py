"""archlearn.data."""
