"""The model catalogue: which OpenAI `model` names exist and which upstream serves them.

ChatHub styles follow the seed (Creative, Balanced, Precise, gpt-4); Copilot modes
follow today's copilot.microsoft.com. Matching is case-insensitive; an unknown name
falls back to DEFAULT_MODEL, because chat UIs send names like "gpt-3.5-turbo".
"""
from __future__ import annotations

from dataclasses import dataclass

CREATED = 1_680_000_000  # a fixed `created` for /v1/models: Bing Chat's public launch era

# Feature flags every ChatHub client sends (protocol notes 2.7, "BASE6" + 2023 additions).
_BASE_OPTIONS = (
    "nlu_direct_response_filter", "deepleo", "disable_emoji_spoken_text",
    "responsible_ai_policy_235", "enablemm", "dv3sugg", "iyxapbing", "iycapbing",
    "autosave", "nojbfedge",
)


@dataclass(frozen=True, slots=True)
class Model:
    """One servable model name and how the upstream is asked for it."""

    id: str
    upstream: str  # "chathub" or "copilot"
    tone: str = ""  # ChatHub `tone`
    options: tuple[str, ...] = ()  # ChatHub optionsSets beyond the base set
    mode: str = ""  # Copilot `mode`

    @property
    def owned_by(self) -> str:
        return "bing-chathub" if self.upstream == "chathub" else "microsoft-copilot"

    @property
    def options_sets(self) -> list[str]:
        return [*_BASE_OPTIONS, *self.options]


_CREATIVE = ("h3imaginative", "clgalileo", "gencontentv3")

CATALOGUE = (
    Model("Creative", "chathub", tone="Creative", options=_CREATIVE),
    Model("Balanced", "chathub", tone="Balanced", options=("galileo", "saharagenconv5")),
    Model("Precise", "chathub", tone="Precise", options=("h3precise", "clgalileo", "gencontentv3")),
    # The seed's gpt-4: Creative with the GPT-4 Turbo flag and web search off,
    # as the original bingo served it (no search made its answers GPT-4 only).
    Model("gpt-4", "chathub", tone="Creative", options=(*_CREATIVE, "dlgpt4t", "nosearchall")),
    Model("copilot", "copilot", mode="chat"),
    Model("copilot-think-deeper", "copilot", mode="reasoning"),
    Model("copilot-smart", "copilot", mode="smart"),
)
DEFAULT_MODEL = CATALOGUE[0]
_BY_NAME = {model.id.lower(): model for model in CATALOGUE}


def find_model(name: str) -> Model | None:
    """The catalogue entry for a name, ignoring case; None when unknown."""
    return _BY_NAME.get(name.strip().lower())


def resolve_model(name: str) -> Model:
    """The model that serves a request naming `name` (unknown names get the default)."""
    return find_model(name) or DEFAULT_MODEL


def build_model_card(model: Model) -> dict[str, object]:
    return {"id": model.id, "object": "model", "created": CREATED, "owned_by": model.owned_by}
