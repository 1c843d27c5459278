"""archlearn.structure."""
