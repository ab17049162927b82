"""Measuring what a model draws: the shapes-world judge (later: CLIP score, Frechet distance)."""

from minildm.metrics.judge import (
    DetectedObject,
    Judgement,
    clean_object_report,
    detect_objects,
    judge,
    nearest_colour,
    score,
)

__all__ = [
    "DetectedObject",
    "Judgement",
    "clean_object_report",
    "detect_objects",
    "judge",
    "nearest_colour",
    "score",
]
