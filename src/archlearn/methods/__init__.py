"""archlearn.methods."""
