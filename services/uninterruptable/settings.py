"""The uninterruptable agent's own settings (besides services/common/settings.py)."""

from __future__ import annotations

from services.common.settings import CommonSettings, NonEmpty, choice, setting


class Settings(CommonSettings):
    protected_speech_user_audio: choice("discard", "keep") = setting(
        "discard", "What happens to user speech while the agent speaks uninterruptibly: "
        "`discard` (dropped, counted as suppressed) or `keep` (transcribed and answered next).")
    greeting_instructions: NonEmpty = setting(
        "Say something somewhat long and boring so I can test if you're interruptable.",
        "User input seeded on entering, so the agent speaks first.")
