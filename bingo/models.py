"""The model catalogue: which OpenAI `model` names exist and which upstream serves them.

The seed's names (Creative, Balanced, Precise, gpt-4) go to the deployment's chosen
upstream (BINGO_UPSTREAM: Copilot by default, the retired ChatHub for mirrors); the
`copilot*` names always go to Copilot. Matching is case-insensitive.
"""
from __future__ import annotations

from dataclasses import dataclass

CREATED = 1_680_000_000  # a fixed `created` for /v1/models: Bing Chat's public launch era

# Feature flags every ChatHub client sent (EdgeGPT's "BASE6" set plus its 2023 additions).
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

# The seed's names as ChatHub styles (BINGO_UPSTREAM=chathub).
CHATHUB_STYLES = (
    Model("Creative", "chathub", tone="Creative", options=_CREATIVE),
    Model("Balanced", "chathub", tone="Balanced", options=("galileo", "saharagenconv5")),
    Model("Precise", "chathub", tone="Precise", options=("h3precise", "clgalileo", "gencontentv3")),
    # The seed's gpt-4: Creative with the GPT-4 Turbo flag and web search off,
    # as the original bingo served it (no search made its answers GPT-4 only).
    Model("gpt-4", "chathub", tone="Creative", options=(*_CREATIVE, "dlgpt4t", "nosearchall")),
)
# The seed's names served by Copilot (the default): the closest 2026 modes.
SEED_ON_COPILOT = (
    Model("Creative", "copilot", mode="smart"),
    Model("Balanced", "copilot", mode="chat"),
    Model("Precise", "copilot", mode="reasoning"),
    Model("gpt-4", "copilot", mode="smart"),
)
# Always Copilot, whatever BINGO_UPSTREAM says. `smart` is the web app's default.
COPILOT_MODES = (
    Model("copilot", "copilot", mode="smart"),
    Model("copilot-quick", "copilot", mode="chat"),
    Model("copilot-smart", "copilot", mode="smart"),
    Model("copilot-think-deeper", "copilot", mode="reasoning"),
    Model("copilot-study", "copilot", mode="study"),
)
FALLBACK = {"copilot": Model("copilot-smart", "copilot", mode="smart"), "chathub": CHATHUB_STYLES[0]}
DEFAULT_NAME = "Creative"  # what a request without `model` is served as


class Catalogue:
    """The names one deployment serves: the seed's names on its chosen upstream."""

    def __init__(self, upstream: str) -> None:
        seed = SEED_ON_COPILOT if upstream == "copilot" else CHATHUB_STYLES
        self.models = (*seed, *COPILOT_MODES)
        self._fallback = FALLBACK[upstream]
        self._by_name = {model.id.lower(): model for model in self.models}

    def find(self, name: str) -> Model | None:
        """The entry for a name, ignoring case; None when unknown."""
        return self._by_name.get(name.strip().lower())

    def resolve(self, name: str) -> Model:
        """The model that serves a request naming `name` (unknown names: the fallback).

        Chat UIs send names like "gpt-4o" or "gpt-3.5-turbo"; they get the
        upstream's best general mode, and the response echoes the name they sent.
        """
        return self.find(name) or self._fallback


CATALOGUES = {upstream: Catalogue(upstream) for upstream in FALLBACK}


def catalogue(upstream: str) -> Catalogue:
    return CATALOGUES[upstream]


def build_model_card(model: Model) -> dict[str, object]:
    return {"id": model.id, "object": "model", "created": CREATED, "owned_by": model.owned_by}
