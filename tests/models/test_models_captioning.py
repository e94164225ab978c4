"""Captioning: robust parsing, Qwen2.5-VL on a tiny model, an OpenAI-compatible local server."""

from __future__ import annotations

import base64
import io
import json

import pytest
import torch
from PIL import Image

from dreamjourney.errors import InputError
from dreamjourney.models.captioning import (
    QUALITY_SUFFIX,
    TEMPLATE_PROMPT,
    CaptionWarning,
    OpenAICaptioner,
    QwenVLCaptioner,
    TemplateCaptioner,
    instruction,
    parse_caption,
)
from dreamjourney.models.protocols import Captioner

WELL_FORMED = json.dumps(
    {
        "objects": [
            {
                "name": "river",
                "significance": "high",
                "motion": "high",
                "sentence": "The river flows to the left",
            },
            {
                "name": "rock",
                "significance": "high",
                "motion": "low",
                "sentence": "The rock stays still.",
            },
            {
                "name": "trees",
                "significance": "medium",
                "motion": "medium",
                "sentence": "Trees sway in the wind.",
            },
        ]
    }
)


def test_instruction_has_the_three_steps():
    text = instruction(2)
    assert "Step 1" in text and "Step 2" in text and "Step 3" in text and "at most 2" in text
    assert '{"objects": [{"name"' in text


def test_parse_well_formed():
    cap = parse_caption(WELL_FORMED)
    assert cap.objects == ["river", "trees"]  # low motion dropped
    assert cap.prompt == f"The river flows to the left. Trees sway in the wind. {QUALITY_SUFFIX}"
    assert cap.fallback is False and cap.raw == WELL_FORMED


def test_parse_fenced_and_chatty():
    raw = f"Sure! Here is the analysis:\n```json\n{WELL_FORMED}\n```\nHope this helps."
    assert parse_caption(raw).objects == ["river", "trees"]


def test_parse_malformed_json_is_repaired():
    raw = "{'objects': [{'name': 'flag', 'motion': 'high', 'sentence': 'The flag flutters.'},]}"
    cap = parse_caption(raw)
    assert cap.objects == ["flag"] and cap.prompt.startswith("The flag flutters.")
    cut = '{"objects": [{"name": "smoke", "sentence": "Smoke rises slowly", "motion": "high"}, {"name": "dog", "sente'
    cap = parse_caption(cut)  # truncated answer: best effort on the complete pairs
    assert cap.objects == ["smoke"] and cap.prompt == f"Smoke rises slowly. {QUALITY_SUFFIX}"
    assert parse_caption('["Waves roll in", "Gulls circle"]').prompt.startswith(
        "Waves roll in. Gulls circle."
    )


def test_all_low_motion_keeps_them():
    raw = '{"objects": [{"name": "lamp", "motion": "low", "sentence": "The lamp flickers."}]}'
    assert parse_caption(raw).objects == ["lamp"]


@pytest.mark.parametrize(
    "raw", ["", "I cannot help with that.", '{"objects": []}', "```json\n{}\n```"]
)
def test_unusable_answer_falls_back_with_a_warning(raw):
    with pytest.warns(CaptionWarning, match="template"):
        cap = parse_caption(raw)
    assert cap.fallback and cap.objects == [] and cap.raw == raw
    assert cap.prompt == f"{TEMPLATE_PROMPT} {QUALITY_SUFFIX}"


def test_template_captioner():
    cap = TemplateCaptioner().caption(torch.rand(3, 8, 8))
    assert isinstance(TemplateCaptioner(), Captioner)
    assert cap.fallback and cap.prompt.endswith(QUALITY_SUFFIX)


def test_qwen_tiny_end_to_end(tiny_model):
    captioner = QwenVLCaptioner(tiny_model("qwen2.5-vl"), max_new_tokens=6)
    image = torch.rand(3, 64, 80)
    raw = captioner.answer(image)
    assert isinstance(raw, str) and raw == captioner.answer(image)  # greedy: deterministic
    with pytest.warns(CaptionWarning):  # random weights answer nonsense
        cap = captioner.caption(image)
    assert cap.raw == raw and cap.prompt.endswith(QUALITY_SUFFIX)


def test_openai_compatible_captioner(chat_server, monkeypatch):
    url, handler = chat_server
    handler.answer = f"```json\n{WELL_FORMED}\n```"
    monkeypatch.setenv("DREAMJOURNEY_CAPTION_MODEL", "qwen2.5vl:7b")
    monkeypatch.setenv("DREAMJOURNEY_CAPTION_API_KEY", "secret-key")
    captioner = OpenAICaptioner(base_url=url + "/")
    image = torch.zeros(3, 20, 30)
    image[0] = 1.0
    cap = captioner.caption(image)
    assert cap.objects == ["river", "trees"] and not cap.fallback
    (req,) = handler.requests
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer secret-key"
    assert req["body"]["model"] == "qwen2.5vl:7b"
    content = req["body"]["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": instruction(3)}
    data_url = content[1]["image_url"]["url"]
    assert data_url.startswith("data:image/png;base64,")
    sent = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))
    assert sent.size == (30, 20) and sent.getpixel((5, 5)) == (255, 0, 0)


def test_openai_captioner_errors(chat_server):
    url, handler = chat_server
    handler.status = 500
    with pytest.raises(InputError, match="HTTP 500"):
        OpenAICaptioner(base_url=url, api_key="k").caption(torch.rand(3, 8, 8))
    with pytest.raises(InputError, match="cannot reach"):
        OpenAICaptioner(base_url="http://127.0.0.1:9/v1", timeout=2).caption(torch.rand(3, 8, 8))
