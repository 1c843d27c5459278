"""archlearn.prune."""
