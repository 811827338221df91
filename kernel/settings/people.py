"""Who is told and who may use the API: recipients, their scopes and channels, API tokens."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import Field, model_validator

from kernel.channels import AnyChannel, ChannelConfig
from kernel.ids import Identifier
from kernel.settings.base import _Model


class Scope(_Model):
    """What a recipient or token covers: a grid, a community, a street, or (empty) everything."""

    community: Identifier | None = None
    grid: Identifier | None = None
    street: Identifier | None = None

    @model_validator(mode="after")
    def _grid_needs_community(self) -> Scope:
        if self.grid is not None and self.community is None:
            raise ValueError("a grid scope needs its community")
        return self


# A way to reach a recipient: one of the models of kernel/channels/, chosen by `type`.
Channel = ChannelConfig


# An admin recipient runs the service: told of the service's own findings (service.* rules), and of
# other alerts only where a route names it. A department contact (吹哨报到) is a recipient too, reached
# on its channels; alerts never route to it.
Role = Literal["grid_worker", "community", "street_office", "bureau", "admin", "department"]


class Recipient(_Model):
    """Somebody who is told about alerts."""

    id: Identifier
    name: str
    role: Role
    scope: Scope = Scope()
    channels: list[AnyChannel] = []


class ApiToken(_Model):
    """A bearer token for the API (the token itself, or its hex SHA-256 as token_sha256); acts as its
    recipient, or with the role given."""

    token: str | None = Field(default=None, min_length=8)
    token_sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    recipient: Identifier | None = None
    role: Literal["admin", "grid_worker", "community", "street_office", "bureau"] | None = None
    scope: Scope | None = None

    @model_validator(mode="after")
    def _one_identity(self) -> ApiToken:
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError("a token is given either as token or as token_sha256 (not both)")
        if (self.recipient is None) == (self.role is None):
            raise ValueError("a token names either a recipient or a role")
        return self

    @property
    def digest(self) -> str:
        """The hex SHA-256 of the token, lower case."""
        if self.token_sha256 is not None:
            return self.token_sha256.lower()
        assert self.token is not None
        return hashlib.sha256(self.token.encode()).hexdigest()
