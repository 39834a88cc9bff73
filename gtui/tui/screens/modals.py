"""Modals: confirm a destructive action, ask for a reason (the filter is a line in its pane, not a modal)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from gtcore.model import clean
from gtui.tui.components.bindings import bindings


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no; ``y``/``n``/``escape`` work as well as the buttons."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("confirm")

    def __init__(self, question: str, detail: str = "", yes: str = "Yes") -> None:
        super().__init__()
        self.question, self.detail, self.yes = question, detail, yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(clean(self.question), style="bold"))
            if self.detail:
                yield Label(Text(clean(self.detail)), classes="detail")
            with Horizontal(classes="buttons"):
                yield Button(self.yes, variant="error", id="yes")
                yield Button("No", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class AskScreen(ModalScreen[str | None]):
    """One line of text (a close reason); escape cancels.  An empty answer is refused, and the dialog stays."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("ask")
    HINT = "enter to confirm, escape to cancel"
    NEEDED = "a reason is needed"

    def __init__(self, prompt: str, value: str = "", placeholder: str = "", allow_empty: bool = False) -> None:
        super().__init__()
        self.prompt, self.value, self.placeholder, self.allow_empty = prompt, value, placeholder, allow_empty

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(clean(self.prompt), style="bold"))
            yield Input(self.value, placeholder=self.placeholder, id="answer")
            yield Label(Text(self.HINT, style="dim"), id="hint")

    def on_mount(self) -> None:
        answer = self.query_one("#answer", Input)
        answer.cursor_blink = False
        answer.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if value or self.allow_empty:
            self.dismiss(value)
        else:
            self.query_one("#hint", Label).update(Text(f"{self.NEEDED} · {self.HINT}", style="bold"))
            self.notify(self.NEEDED, severity="warning")

    def action_cancel(self) -> None:
        self.dismiss(None)
