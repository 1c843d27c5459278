"""archlearn.models."""
