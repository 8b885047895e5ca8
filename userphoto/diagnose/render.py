"""The verdict of one diagnosis and how it reads: text for people, a dict for JSON and pages."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from ..findings import FILE, Cause, Level
from ..model import ClientProfile
from ..resolve import Source
from .surfaces import Answer


class Symptom(StrEnum):
    """The three symptoms of the modeled system's support article."""

    OWN_PHOTO = "own_photo_not_shown"
    OTHERS = "others_cannot_see"
    NO_HD = "no_hd_photo"

    @property
    def heading(self) -> str:  # not `title`: a member is a str, and would lose str.title()
        return {
            Symptom.OWN_PHOTO: "The user can't see their own photo",
            Symptom.OTHERS: "Other contacts (especially external ones) can't see the photo",
            Symptom.NO_HD: "No high-resolution photo in meetings or large views",
        }[self]


@dataclass(frozen=True)
class Sees:
    source: str  # hd | directory | url | default | none
    size: int | None
    text: str


@dataclass
class Diagnosis:
    target: str
    viewer: str
    client: ClientProfile
    size: int | None
    sees: Sees
    steps: list[dict[str, str]] = field(default_factory=list)
    causes: list[Cause] = field(default_factory=list)
    symptom: Symptom | None = None
    surfaces: list[Answer] = field(default_factory=list)

    @property
    def shows_photo(self) -> bool:
        return self.sees.source in (Source.HD, Source.DIRECTORY, Source.URL)

    @property
    def fixes(self) -> list[str]:
        return [command for cause in self.causes for command in cause.fix]

    @property
    def errors(self) -> int:
        """Error-level causes: `userphoto diagnose` exits non-zero when there are any."""
        return sum(1 for c in self.causes if c.level is Level.ERROR)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "viewer": self.viewer,
            "client": self.client.value,
            "size": self.size,
            "sees": asdict(self.sees),
            "steps": self.steps,
            "symptom": {"code": self.symptom.value, "title": self.symptom.heading}
            if self.symptom
            else None,
            "causes": [c.to_dict() for c in self.causes],
            "surfaces": [a.to_dict() for a in self.surfaces],
            "errors": self.errors,
            "summary": self.summary,
        }

    @property
    def summary(self) -> str:
        head = f"{self.viewer} sees {self.sees.text}."
        if self.symptom is None and not self.causes:
            return head + " Nothing to fix."
        if self.symptom is None:
            return head + f" {len(self.causes)} note(s) below."
        return head + f" Symptom: {self.symptom.heading.lower()}."

    def text(self) -> str:
        lines = [
            f"target:  {self.target}",
            f"viewer:  {self.viewer}",
            f"client:  {self.client.value}" + (f", size {self.size}" if self.size else ""),
            "",
            f"Sees: {self.sees.text}",
        ]
        if self.steps:
            lines += ["", "How the photo was chosen:"]
            for step in self.steps:
                lines.append(f"  {step['step']:<10} {step['verdict']:<11} {step['reason']}")
        if self.surfaces:
            lines += ["", "What each API answers:"]
            for answer in self.surfaces:
                lines.append(f"  {answer.surface:<7} {answer.text}")
                lines.append(f"  {'':<7} ({answer.request})")
        if self.symptom:
            lines += ["", f"Symptom: {self.symptom.heading}"]
        if self.causes:
            # Anything at error level is a cause, even when the photo shows for this viewer.
            lines += ["", "Causes:" if self.symptom or self.errors else "Notes:"]
            for cause in self.causes:
                label = f"{cause.level.value}, the user's choice" if cause.choice else cause.level
                lines.append(f"  [{label}] {cause.message}")
                fix = "fix (overrides the user's choice)" if cause.choice else "fix"
                for command in cause.fix:
                    lines.append(f"      {fix}: {command}")
                if cause.advice:
                    lines.append(f"      what to do: {cause.advice}")
            if any(FILE in c for c in self.fixes):
                lines += ["", f"({FILE}: a JPEG or PNG photo, 648×648 or larger.)"]
            if len(self.fixes) > 1:
                lines += ["Apply the fixes in the order printed."]
        elif not self.symptom:
            lines += ["", "Nothing to fix."]
        return "\n".join(lines)
