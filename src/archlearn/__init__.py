"""archlearn."""
