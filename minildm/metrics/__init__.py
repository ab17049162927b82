"""Measuring what a model draws: the shapes-world judge, rates with intervals, CLIP score, Frechet
distance."""

from minildm.metrics.judge import (
    DetectedObject,
    Judgement,
    clean_object_report,
    detect_objects,
    judge,
    nearest_colour,
    score,
)
from minildm.metrics.prompts import PROMPT_KINDS, prompt_fidelity, prompt_set
from minildm.metrics.stats import wilson_interval

__all__ = [
    "PROMPT_KINDS",
    "DetectedObject",
    "Judgement",
    "clean_object_report",
    "detect_objects",
    "judge",
    "nearest_colour",
    "prompt_fidelity",
    "prompt_set",
    "score",
    "wilson_interval",
]
