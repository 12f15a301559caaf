"""The interrupter's own settings (besides services/common/settings.py)."""

from __future__ import annotations

from services.common.settings import CommonSettings, NonEmpty, count, seconds, setting


class Settings(CommonSettings):
    interrupt_max_sentences: count(0, 1000) = setting(
        3, "Cut in once the user's monologue reaches this many sentences (0 disables this limit).")
    interrupt_max_words: count(1, 100000, optional=True) = setting(
        "", "Cut in at this many words in one monologue (empty disables).")
    interrupt_max_seconds: seconds(0, 3600, lo_open=True, optional=True) = setting(
        "", "Cut in after this many seconds of monologue (empty disables).")
    interrupt_floor_seconds: seconds(0, 60, lo_open=True) = setting(
        3, "A monologue is the user's speech since the agent last had the floor: pauses and "
        "replies the user talks over do not end it; the agent speaking this many seconds, or to "
        "the end of a reply, without being talked over does.")
    interrupt_preface: NonEmpty = setting(
        "Sorry, can I pause you there?", "Line spoken at once when cutting in.")
    interrupt_instructions: NonEmpty = setting(
        "The user has been talking for a while. In one or two short sentences, acknowledge what "
        "they said so far, then ask one focused question to narrow it down.",
        "Instructions for the reply that follows the preface.")
