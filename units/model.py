"""The shapes of the units directory and the desk codes: the YAML schema (pydantic, unknown keys
are errors) and the checked, immutable values the rest of the desk reads."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from telephony.values import DialNumber

PROVINCE = "province"  # the province-wide files: directory/units/province.yaml, directory/codes/province.yaml

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CJK = re.compile(r"[\u3400-\u9fff]")


def _shaped(pattern: str, what: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if compiled.fullmatch(value) is None:
            raise ValueError(what)
        return value

    return AfterValidator(check)


def _text(value: str) -> str:
    if value != value.strip() or _CONTROL.search(value):
        raise ValueError("no line breaks, control characters, or spaces at either end")
    return value


def _chinese(value: str) -> str:
    if _CJK.search(value) is None:
        raise ValueError("a unit's name is its Chinese name, e.g. 昆明市住房公积金管理中心")
    return value


CodeId = Annotated[str, _shaped(r"[a-z0-9_-]{1,64}", "an id is 1-64 of a-z, 0-9, '_' and '-'")]
UnitId = CodeId
MatterTypeId = CodeId
Label = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_text)]
UnitName = Annotated[str, Field(min_length=2, max_length=64), AfterValidator(_text), AfterValidator(_chinese)]
# a unit's contact number is dialled by outbound reminders: a DialNumber (safe in a dial string,
# telephony/values.py) that is also a phone number: 3-20 digits, an optional leading +
ContactNumber = Annotated[
    DialNumber,
    _shaped(r"\+?[0-9]{3,20}", "a contact number is 3-20 digits with an optional leading + (no spaces or dashes)"),
]
PauseKey = Annotated[str, _shaped(r"[0-9]{1,4}", "a pause key is 1-4 digits (the phone's *23NN)")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Contact(_Model):
    number: ContactNumber
    label: Label | None = None


class Unit(_Model):
    """One 承办单位 of a units file."""

    id: UnitId
    name: UnitName
    department: Label | None = Field(default=None, description="the government it belongs to, e.g. 昆明市人民政府")
    parent: UnitId | None = Field(default=None, description="the unit above it (same platform or province-wide)")
    contacts: tuple[Contact, ...] = Field(min_length=1, max_length=10)
    matter_types: tuple[MatterTypeId, ...] = Field(min_length=1, max_length=100)


class UnitsFile(_Model):
    units: tuple[Unit, ...] = Field(default=(), max_length=5000)


class Disposition(_Model):
    """A wrap-up code (处置结果)."""

    id: CodeId
    label: Label
    requires_case: bool = Field(default=False, description="the seat must have registered a case for the call")


class PauseReason(_Model):
    """A pause reason (小休原因)."""

    id: CodeId
    label: Label
    counts_as_productive: bool = Field(default=False, description="counted as work in the seat's figures")
    key: PauseKey | None = Field(default=None, description="the digits of the phone's *23NN for this reason")


class MatterType(_Model):
    """A matter type (事项类型) a unit handles and a case is filed under."""

    id: MatterTypeId
    label: Label


class Omit(_Model):
    """Province-wide codes a platform does not use."""

    dispositions: tuple[CodeId, ...] = ()
    pause_reasons: tuple[CodeId, ...] = ()
    matter_types: tuple[MatterTypeId, ...] = ()


class CodesFile(_Model):
    dispositions: tuple[Disposition, ...] = Field(default=(), max_length=200)
    pause_reasons: tuple[PauseReason, ...] = Field(default=(), max_length=200)
    matter_types: tuple[MatterType, ...] = Field(default=(), max_length=2000)
    omit: Omit = Omit()


@dataclass(frozen=True)
class PlacedUnit:
    """A checked unit and the platform whose file lists it (``province``: province-wide)."""

    unit: Unit
    platform: str


@dataclass(frozen=True)
class DeskCodes:
    """One platform's codes: the province-wide ones it does not omit, then its own."""

    dispositions: tuple[Disposition, ...] = ()
    pause_reasons: tuple[PauseReason, ...] = ()
    matter_types: tuple[MatterType, ...] = ()

    def disposition(self, code: str) -> Disposition | None:
        return next((d for d in self.dispositions if d.id == code), None)

    def pause_reason(self, code: str) -> PauseReason | None:
        return next((p for p in self.pause_reasons if p.id == code), None)

    def pause_reason_for_key(self, key: str) -> PauseReason | None:
        return next((p for p in self.pause_reasons if p.key is not None and p.key == key), None)

    def matter_type(self, code: str) -> MatterType | None:
        return next((m for m in self.matter_types if m.id == code), None)
