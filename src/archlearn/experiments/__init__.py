"""archlearn.experiments."""
