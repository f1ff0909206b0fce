"""Pose-guided human video generation (Yang et al., "Pose Guided Human Video Generation", ECCV 2018)."""
