"""Image classification with CE, label smoothing, KD and Teacher-free KD (Yuan et al. 2020)."""
