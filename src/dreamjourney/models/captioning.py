"""Stage II prompts: what in a view could move, as one prompt for an image-to-video model.

The instruction follows DreamJourney's three steps: (1) identify the objects that could move,
(2) judge each one's visual significance and motion possibility, (3) write one short sentence
per kept object. The model answers in JSON; `parse_caption` accepts a well-formed answer, one in
a ```json fence, or a malformed one (best effort), and falls back to the template prompt with a
`CaptionWarning` when nothing usable is left. The quality suffix is appended to every prompt.

Backends: Qwen2.5-VL through transformers (local weights), any OpenAI-compatible
chat-completions endpoint (vLLM, Ollama, LM Studio, hosted APIs), and the offline template.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import urllib.error
import urllib.request
import warnings
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from dreamjourney.errors import InputError
from dreamjourney.io.images import to_uint8
from dreamjourney.models.protocols import Caption
from dreamjourney.models.weights import (
    ModelStore,
    load_pretrained,
    parse_dtype,
    resident,
    resolve_weights,
)

QUALITY_SUFFIX = "High quality, sharp details, natural smooth motion, static camera."
TEMPLATE_PROMPT = (
    "The scene comes gently alive: natural elements move softly while the camera stays still."
)

INSTRUCTION = """You are looking at one frame of a video shot with a fixed camera. Work in three steps.
Step 1: identify the objects in the image that could move (for example people, animals, vehicles, water, waves, clouds, smoke, fire, trees, grass, flags, lights).
Step 2: for each object, judge its visual significance (how large and prominent it is) and its motion possibility (how naturally it would move), each as "high", "medium" or "low". Keep at most {max_objects} objects, preferring those high on both.
Step 3: for each kept object, write one short sentence saying how it moves.
Answer with JSON only, no other text, in exactly this form:
{{"objects": [{{"name": "...", "significance": "high", "motion": "high", "sentence": "..."}}]}}"""


class CaptionWarning(UserWarning):
    """The captioner's answer could not be used; the template prompt was used instead."""


def instruction(max_objects: int = 3) -> str:
    """The three-step instruction sent with the image."""
    return INSTRUCTION.format(max_objects=max_objects)


def _with_suffix(text: str) -> str:
    text = text.strip()
    if text and text[-1] not in ".!?":
        text += "."
    return f"{text} {QUALITY_SUFFIX}".strip()


def template_caption(raw: str = "") -> Caption:
    """The offline prompt (also the fallback for unusable answers)."""
    return Caption(prompt=_with_suffix(TEMPLATE_PROMPT), objects=[], raw=raw, fallback=True)


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_PAIR = re.compile(
    r"""["']?(name|object|sentence|description|motion|significance)["']?\s*:\s*["']([^"'\n]*)["']"""
)


def _json_candidates(raw: str) -> list[str]:
    """Texts that might hold the JSON answer, most likely first."""
    out = [raw.strip()]
    out += [m.strip() for m in _FENCE.findall(raw)]
    for open_, close in (("{", "}"), ("[", "]")):
        start, end = raw.find(open_), raw.rfind(close)
        if 0 <= start < end:
            out.append(raw[start : end + 1])
    return out


def _repair(text: str) -> str:
    """Common slips of language models: trailing commas, single quotes, Python literals."""
    text = re.sub(r",\s*([}\]])", r"\1", text)
    if '"' not in text:
        text = text.replace("'", '"')
    return text.replace("True", "true").replace("False", "false").replace("None", "null")


def _load_json(raw: str) -> Any:
    for candidate in _json_candidates(raw):
        for text in (candidate, _repair(candidate)):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                continue
    return None


def _entries(data: Any) -> list[dict[str, str]]:
    """The object entries of a parsed answer, whatever its top-level shape."""
    if isinstance(data, dict):
        for key in ("objects", "movable_objects", "items", "results"):
            if isinstance(data.get(key), list):
                return _entries(data[key])
        if isinstance(data.get("prompt"), str):
            return [{"name": "", "sentence": data["prompt"]}]
        return [_entry(data)] if _entry(data)["sentence"] else []
    if isinstance(data, list):
        return [e for e in (_entry(x) for x in data) if e["sentence"] or e["name"]]
    return []


def _entry(item: Any) -> dict[str, str]:
    if isinstance(item, str):
        return {"name": "", "sentence": item}
    if not isinstance(item, dict):
        return {"name": "", "sentence": ""}
    name = str(item.get("name") or item.get("object") or "")
    sentence = str(item.get("sentence") or item.get("description") or item.get("caption") or "")
    return {"name": name, "sentence": sentence, "motion": str(item.get("motion", "")).lower()}


def _best_effort(raw: str) -> list[dict[str, str]]:
    """Entries read from `key: "value"` pairs of an answer that is not JSON at all."""
    entries: list[dict[str, str]] = []
    for key, value in _PAIR.findall(raw):
        key = {"object": "name", "description": "sentence"}.get(key, key)
        if key == "name" or not entries or key in entries[-1]:
            entries.append({})
        entries[-1][key] = value
    return [
        {
            "name": e.get("name", ""),
            "sentence": e.get("sentence", ""),
            "motion": e.get("motion", "").lower(),
        }
        for e in entries
        if e.get("sentence")
    ]


def parse_caption(raw: str) -> Caption:
    """The prompt in a captioner's answer `raw`, or the template with a `CaptionWarning`.

    Objects whose motion possibility is rated "low" or "none" are dropped unless that would
    drop them all. Sentences are joined in the model's order and the quality suffix appended.
    """
    entries = _entries(_load_json(raw)) or _best_effort(raw)
    entries = [e for e in entries if e["sentence"].strip()]
    moving = [e for e in entries if e.get("motion") not in ("low", "none")]
    entries = moving or entries
    if not entries:
        short = " ".join(raw.split())[:80]
        warnings.warn(
            f"captioner answer unusable, using the template prompt (answer: {short!r})",
            CaptionWarning,
            stacklevel=2,
        )
        return template_caption(raw)
    sentences = []
    for e in entries:
        s = e["sentence"].strip()
        sentences.append(s if s[-1] in ".!?" else s + ".")
    return Caption(
        prompt=_with_suffix(" ".join(sentences)),
        objects=[e["name"] for e in entries if e["name"]],
        raw=raw,
        fallback=False,
    )


class TemplateCaptioner:
    """Offline captioner: always the template prompt."""

    name = "template"

    def check_weights(self) -> None:
        """Needs no weights."""

    def caption(self, image: Tensor) -> Caption:
        return template_caption()


class QwenVLCaptioner:
    """Qwen2.5-VL (or Qwen2-VL) through transformers, greedy decoding.

    The prompt is built with the tokenizer's chat template and the image processor directly
    (the combined Qwen processor needs torchvision for its video part).
    max_pixels: image area budget in pixels (the processor resizes to fit it).
    offload: keep the model on the CPU except while it captions.
    unload: free the model after every caption (it is loaded again for the next one): no
        memory held between captions, at the price of a load per caption.
    """

    name = "qwen2.5-vl"

    def __init__(
        self,
        model: str = "Qwen/Qwen2.5-VL-7B-Instruct",
        *,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype | None = None,
        max_new_tokens: int = 256,
        max_objects: int = 3,
        max_pixels: int = 640 * 28 * 28,
        offload: bool = False,
        unload: bool = False,
        store: ModelStore | None = None,
    ):
        self.model_id = model
        self.device = torch.device(device)
        self.dtype = parse_dtype(dtype) or torch.float32
        self.max_new_tokens = max_new_tokens
        self.max_objects = max_objects
        self.max_pixels = max_pixels
        self.offload = offload
        self.unload = unload
        self.store = store or ModelStore()

    def check_weights(self) -> None:
        resolve_weights(self.model_id, role="captioner")

    @property
    def _key(self) -> tuple[str, str]:
        return ("captioner", self.model_id)

    def _load(self) -> tuple[Any, Any, Any]:
        return self.store.get(self._key, self._load_parts)

    def _load_parts(self) -> tuple[Any, Any, Any]:
        from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

        tokenizer = load_pretrained(AutoTokenizer, self.model_id, role="captioner")
        if tokenizer.chat_template is None:
            root = resolve_weights(self.model_id, role="captioner")
            for name in ("chat_template.jinja", "chat_template.json"):
                if (root / name).exists():
                    text = (root / name).read_text()
                    tokenizer.chat_template = (
                        json.loads(text)["chat_template"] if name.endswith(".json") else text
                    )
                    break
        processor = load_pretrained(AutoImageProcessor, self.model_id, role="captioner")
        model = load_pretrained(
            AutoModelForImageTextToText, self.model_id, role="captioner", dtype=self.dtype
        )
        return tokenizer, processor, model.to("cpu" if self.offload else self.device).eval()

    @torch.no_grad()
    def answer(self, image: Tensor) -> str:
        """The model's raw answer to the instruction for `image` `(3,H,W)`."""
        tokenizer, processor, model = self._load()
        messages = [
            {
                "role": "user",
                "content": [
                    {"type": "image"},
                    {"type": "text", "text": instruction(self.max_objects)},
                ],
            }
        ]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        pixels = processor(
            images=[Image.fromarray(to_uint8(image))],
            return_tensors="pt",
            size={"shortest_edge": 56 * 56, "longest_edge": self.max_pixels},
        )
        merge = getattr(processor, "merge_size", 2)
        n_tokens = int(pixels["image_grid_thw"][0].prod()) // (merge * merge)
        text = text.replace("<|image_pad|>", "<|image_pad|>" * n_tokens, 1)
        ids = tokenizer(text, return_tensors="pt").to(self.device)
        with resident(model, self.device, self.offload):
            out = model.generate(
                **ids,
                pixel_values=pixels["pixel_values"].to(self.device, self.dtype),
                image_grid_thw=pixels["image_grid_thw"].to(self.device),
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
            )
        if self.unload:
            self.store.drop(self._key)
            del model
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)

    def caption(self, image: Tensor) -> Caption:
        return parse_caption(self.answer(image))


class OpenAICaptioner:
    """Any OpenAI-compatible `/chat/completions` endpoint, the image sent as a base64 data URL.

    base_url / model / api_key default to `$DREAMJOURNEY_CAPTION_BASE_URL` (else
    `$OPENAI_BASE_URL`, else https://api.openai.com/v1), `$DREAMJOURNEY_CAPTION_MODEL` (else
    gpt-4o-mini) and `$DREAMJOURNEY_CAPTION_API_KEY` (else `$OPENAI_API_KEY`; local servers
    need none).
    """

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        max_tokens: int = 400,
        max_objects: int = 3,
        timeout: float = 120.0,
        image_size: int = 768,
    ):
        env = os.environ
        self.base_url = (
            base_url
            or env.get("DREAMJOURNEY_CAPTION_BASE_URL")
            or env.get("OPENAI_BASE_URL")
            or "https://api.openai.com/v1"
        ).rstrip("/")
        self.model = model or env.get("DREAMJOURNEY_CAPTION_MODEL") or "gpt-4o-mini"
        self.api_key = (
            api_key or env.get("DREAMJOURNEY_CAPTION_API_KEY") or env.get("OPENAI_API_KEY")
        )
        self.max_tokens = max_tokens
        self.max_objects = max_objects
        self.timeout = timeout
        self.image_size = image_size

    def check_weights(self) -> None:
        """A remote model: nothing to find locally."""

    def _data_url(self, image: Tensor) -> str:
        pil = Image.fromarray(to_uint8(image))
        pil.thumbnail((self.image_size, self.image_size))
        buf = io.BytesIO()
        pil.save(buf, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")

    def answer(self, image: Tensor) -> str:
        """The endpoint's raw answer to the instruction for `image` `(3,H,W)`."""
        body = {
            "model": self.model,
            "temperature": 0,
            "max_tokens": self.max_tokens,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": instruction(self.max_objects)},
                        {"type": "image_url", "image_url": {"url": self._data_url(image)}},
                    ],
                }
            ],
        }
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = f"{self.base_url}/chat/completions"
        request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                reply = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            if self.api_key:  # servers may quote the key they refused
                detail = detail.replace(self.api_key, "[api_key]")
            detail = detail[:200].replace("\n", " ")
            raise InputError(
                f"HTTP {exc.code} from {url}: {detail}", field="captioner.base_url"
            ) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise InputError(f"cannot reach {url}: {exc}", field="captioner.base_url") from None
        except json.JSONDecodeError:
            raise InputError(
                f"{url} did not answer with JSON", field="captioner.base_url"
            ) from None
        try:
            return str(reply["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError):
            raise InputError(
                f"{url} answered without choices[0].message.content", field="captioner.base_url"
            ) from None

    def caption(self, image: Tensor) -> Caption:
        return parse_caption(self.answer(image))
