"""Evaluation: DAVIS J&F, MOT metrics (HOTA, IDF1, MOTA)."""
