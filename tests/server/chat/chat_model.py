"""A tiny chat model for the LLM-service tests: it answers the last message back, word by word
with a small delay, and records in a directory when it produces each word, when it finishes and
when a stream is cancelled (the `RECORD` line is filled in when the test saves it). A message
starting with "boom" makes it raise after two words."""

from __future__ import annotations

from pathlib import Path

import mlflow

CODE = """
import os
import time

import mlflow
from mlflow.pyfunc import ChatModel
from mlflow.types.llm import (
    ChatChoice, ChatChoiceDelta, ChatChunkChoice, ChatCompletionChunk, ChatCompletionResponse, ChatMessage,
)

RECORD = {record!r}
DELAY = {delay!r}


def note(line):
    with open(os.path.join(RECORD, "events.log"), "a") as file:
        file.write(f"{{time.time():.6f}} {{line}}\\n")


class WordByWord(ChatModel):
    def predict(self, context, messages, params):
        text = messages[-1].content
        message = ChatMessage(role="assistant", content=text)
        return ChatCompletionResponse(choices=[ChatChoice(index=0, message=message)])

    def predict_stream(self, context, messages, params):
        words = messages[-1].content.split()
        tag = words[0]
        try:
            for i, word in enumerate(words):
                if tag == "boom" and i == 2:
                    raise RuntimeError("the model broke mid-reply")
                note(f"produced {{tag}} {{i}}")
                delta = ChatChoiceDelta(role="assistant", content=(" " if i else "") + word)
                yield ChatCompletionChunk(choices=[ChatChunkChoice(index=0, delta=delta)])
                time.sleep(DELAY)
            note(f"finished {{tag}}")
        except GeneratorExit:
            note(f"cancelled {{tag}}")
            raise


mlflow.models.set_model(WordByWord())
"""


def save_chat_model(directory: Path, record: Path, delay: float = 0.05) -> Path:
    """Save the word-by-word chat model (models from code) under `directory`; it records in `record`."""
    record.mkdir(parents=True, exist_ok=True)
    code = directory / "word_by_word.py"
    code.write_text(CODE.format(record=str(record), delay=delay))
    path = directory / "chat-model"
    mlflow.pyfunc.save_model(str(path), python_model=str(code))
    return path


def events(record: Path) -> list[tuple[float, str]]:
    """What the model recorded: (epoch seconds, what happened), oldest first."""
    log = record / "events.log"
    if not log.exists():
        return []
    rows = [line.split(" ", 1) for line in log.read_text().splitlines() if line]
    return [(float(when), what) for when, what in rows]
