"""Prompts: what the user says about the objects of a video (boxes, points, masks, scribbles,
exemplars, text, external detections), their JSON and CLI forms, validation, resolution into
`Observation`s (each kind plans its own: `Prompt.applies_at`, `Prompt.plan`) and the schedule of a
source's prompts over time (`PromptSchedule`). The JSON format is documented in docs/prompts.md."""

from pipeline.prompts.args import (
    merge_points,
    parse_box_arg,
    parse_detections_arg,
    parse_exemplar_arg,
    parse_mask_arg,
    parse_point_arg,
    parse_text_arg,
)
from pipeline.prompts.base import KINDS, Application, Prompt, RedetectingPrompt
from pipeline.prompts.detections import DetectionsPrompt, load_mot
from pipeline.prompts.errors import PromptError, PromptsError
from pipeline.prompts.exemplar import Exemplar, ExemplarPrompt
from pipeline.prompts.geometry import BoxPrompt, PointsPrompt, ScribblePrompt
from pipeline.prompts.jsonfile import (
    load_prompts_file,
    prompt_from_json,
    prompts_from_json,
    prompts_to_json,
)
from pipeline.prompts.mask import MaskPrompt, load_label_png
from pipeline.prompts.plan import MaskAsk, PromptFrame
from pipeline.prompts.resolve import resolve_prompt, resolve_prompts
from pipeline.prompts.schedule import PromptSchedule
from pipeline.prompts.text import TextDetector, TextPrompt
from pipeline.prompts.validate import validate_prompts

__all__ = [
    "KINDS",
    "Application",
    "BoxPrompt",
    "DetectionsPrompt",
    "Exemplar",
    "ExemplarPrompt",
    "MaskAsk",
    "MaskPrompt",
    "PointsPrompt",
    "Prompt",
    "PromptError",
    "PromptFrame",
    "PromptSchedule",
    "PromptsError",
    "RedetectingPrompt",
    "ScribblePrompt",
    "TextDetector",
    "TextPrompt",
    "load_label_png",
    "load_mot",
    "load_prompts_file",
    "merge_points",
    "parse_box_arg",
    "parse_detections_arg",
    "parse_exemplar_arg",
    "parse_mask_arg",
    "parse_point_arg",
    "parse_text_arg",
    "prompt_from_json",
    "prompts_from_json",
    "prompts_to_json",
    "resolve_prompt",
    "resolve_prompts",
    "validate_prompts",
]
