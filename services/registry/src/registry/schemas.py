"""The API's pydantic models: handlers parse and render with them; /openapi.json is made from them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from webhooks_common.urls import MAX_URL

MAX_NAME = 200
MAX_EVENTS = 300


class _Api(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class EntityRef(_Api):
    """The managing entity (account owner) the webhook belongs to; `identifier` must equal the path's."""

    identifier: StrictStr = Field(
        min_length=1, max_length=MAX_NAME, description="Managing entity identifier."
    )
    name: StrictStr = Field(
        min_length=1, max_length=MAX_NAME, description="Display name of the managing entity."
    )


class WebhookBody(_Api):
    """Create (and full update) payload, compatible with Wink's `UpsertWebhookRequest`."""

    name: StrictStr = Field(min_length=1, max_length=MAX_NAME, description="Descriptive name of the webhook.")
    entity: EntityRef
    enabled: StrictBool = Field(True, description="Whether the webhook receives events.")
    event_list: list[StrictStr] = Field(
        default_factory=list,
        alias="eventList",
        max_length=MAX_EVENTS,
        description="Catalogue event types, `booking.created`, or `prefix.*` wildcards. Empty: all events.",
    )
    event_url: StrictStr = Field(
        alias="eventUrl",
        min_length=1,
        max_length=MAX_URL,
        description="Absolute https URL to POST to: no credentials, no private/loopback/link-local address.",
        json_schema_extra={"format": "uri"},
    )


class WebhookPatch(_Api):
    """Update payload: Wink's full body, or any subset of its fields (absent fields keep their value)."""

    name: StrictStr | None = Field(None, min_length=1, max_length=MAX_NAME)
    entity: EntityRef | None = None
    enabled: StrictBool | None = None
    event_list: list[StrictStr] | None = Field(None, alias="eventList", max_length=MAX_EVENTS)
    event_url: StrictStr | None = Field(
        None, alias="eventUrl", min_length=1, max_length=MAX_URL, json_schema_extra={"format": "uri"}
    )


class WebhookRecord(_Api):
    """A stored webhook, compatible with Wink's `WebhookLightweight`."""

    id: str = Field(description="Unique identifier of the webhook.", json_schema_extra={"format": "uuid"})
    created_date: datetime = Field(alias="createdDate", description="When the webhook was created (UTC).")
    last_update: datetime = Field(alias="lastUpdate", description="When the webhook last changed (UTC).")
    version: int = Field(
        description="Optimistic-locking version; send it back as If-Match. Grows by one per change."
    )
    user_identifier: str = Field(
        alias="userIdentifier", description="`sub` of the user who made the last change."
    )
    owner_identifier: str = Field(
        alias="ownerIdentifier", description="Managing entity that owns the webhook."
    )
    owner_name: str = Field(alias="ownerName", description="Display name of the managing entity.")
    name: str
    enabled: bool
    event_url: str = Field(alias="eventUrl")
    event_list: list[str] = Field(alias="eventList", description="Empty means all events.")
    disabled_reason: str | None = Field(
        None,
        alias="disabledReason",
        description="Why the platform disabled the webhook (410 Gone, sustained failure); null once enabled.",
    )


class RemoveEntryResponse(_Api):
    id: str
    success: bool
    message: str


class KeyValuePair(_Api):
    value: str = Field(min_length=1, description="The event type to put in `eventList`.")
    label: str = Field(min_length=1, description="Readable label.")


class SecretResponse(_Api):
    """The webhook's current signing secret (Standard Webhooks `whsec_` format)."""

    secret: str = Field(pattern=r"^whsec_[A-Za-z0-9+/=]+$")


class RotatedSecretResponse(SecretResponse):
    previous_expires_at: datetime | None = Field(
        None,
        alias="previousExpiresAt",
        description="Until when the previous secret keeps signing next to the new one (null: none left).",
    )


class FieldErrorModel(_Api):
    field: str = Field(
        description="Dotted path of the invalid field in the request body, e.g. `entity.name`."
    )
    reason: str


class ProblemDetail(_Api):
    """RFC 9457 problem details (`application/problem+json`)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldErrorModel] | None = Field(None, description="Present on validation errors.")


class Health(_Api):
    status: str
    checks: dict[str, bool] = Field(default_factory=dict)
