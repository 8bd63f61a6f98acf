"""Group IPT: groups, their members and pre-group meetings, and group sessions recorded once."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.audit import context as audit
from app.core.http import JSON, required_version, resource
from app.core.openapi import AUTH, errors, if_match
from app.core.pagination import Page, page_params
from app.core.schemas import ListOf
from app.deps import ClinicalReader, ClinicalWriter, Db
from app.groups import repository, service
from app.groups.schemas import (
    DiscontinueReason,
    GroupCreate,
    GroupOutcomes,
    GroupPublic,
    GroupSessionCreate,
    GroupSessionPublic,
    GroupUpdate,
    MemberCreate,
    MemberPublic,
    PreGroupMeeting,
)
from app.routing import api_router

router = api_router(prefix="/v1/groups", tags=["groups"])
RULES = errors(*AUTH, 400, 404, 409, 422)


async def _name_group(group_id: str) -> None:
    """Name the group in the audit event before anything can refuse the request."""
    audit.note(resource_type="group", resource_id=group_id)


GROUP = [Depends(_name_group)]


@router.post("", status_code=201, response_model=GroupPublic, responses=RULES)
async def create_group(body: GroupCreate, db: Db, principal: ClinicalWriter) -> JSON:
    """Open a closed group: protocol, planned group sessions (G4), capacity (G2), 1-2 facilitators (G7)."""
    group = await service.create(db, principal, body.model_dump())
    return resource(group, status=201, headers={"Location": f"/v1/groups/{group['id']}"})


@router.get("", response_model=ListOf[GroupPublic], responses=errors(*AUTH))
async def list_groups(db: Db, principal: ClinicalReader, page: Annotated[Page, Depends(page_params("groups"))]) -> JSON:
    """The groups in reach: a clinician's are those they facilitate."""
    found = await repository.list_page(db, principal, page)
    found["data"] = [service.present(g) for g in found["data"]]
    return JSON(found)


@router.get("/{group_id}", response_model=GroupPublic, responses=errors(*AUTH, 404), dependencies=GROUP)
async def get_group(group_id: str, db: Db, principal: ClinicalReader) -> JSON:
    """One group, with its phase, facilitators and member count."""
    return resource(await service.get(db, principal, group_id))


@router.patch("/{group_id}", response_model=GroupPublic, responses={**RULES, **errors(412, 428)},
              openapi_extra=if_match(), dependencies=GROUP)
async def update_group(group_id: str, body: GroupUpdate, request: Request, db: Db, principal: ClinicalWriter) -> JSON:
    """Rename a group or change its plan, capacity or facilitators; needs If-Match."""
    version = required_version(request)
    return resource(await service.update(db, principal, group_id, version, body.changes()))


@router.post("/{group_id}/members", status_code=201, response_model=MemberPublic, responses=RULES, dependencies=GROUP)
async def add_member(group_id: str, body: MemberCreate, db: Db, principal: ClinicalWriter) -> JSON:
    """A patient joins, before group session 1 (G1) and within capacity (G2), with a course of their own."""
    member = await service.join(db, principal, group_id, body.patient_id)
    audit.note(patient_id=body.patient_id)
    return resource(member, status=201, headers={"Location": f"/v1/groups/{group_id}/members/{member['id']}"})


@router.get("/{group_id}/members", response_model=list[MemberPublic], responses=errors(*AUTH, 404), dependencies=GROUP)
async def list_members(group_id: str, db: Db, principal: ClinicalReader) -> JSON:
    """The group's members (those who left too), in the order they joined."""
    await repository.get(db, principal, group_id)
    return JSON(await repository.members(db, group_id))


@router.delete("/{group_id}/members/{member_id}", response_model=MemberPublic, responses=RULES, dependencies=GROUP)
async def remove_member(group_id: str, member_id: str, reason: DiscontinueReason, db: Db,
                        principal: ClinicalWriter) -> JSON:
    """A member leaves (``reason``, as P7's): their course is discontinued; the others go on. The member is
    answered as left (200), with the reason and date."""
    return resource(await service.leave(db, principal, group_id, member_id, reason))


@router.post("/{group_id}/members/{member_id}/pre-group-meetings", status_code=201, response_model=MemberPublic,
             responses=RULES, dependencies=GROUP)
async def add_pre_group_meeting(group_id: str, member_id: str, body: PreGroupMeeting, db: Db,
                                principal: ClinicalWriter) -> JSON:
    """Record a member's next individual pre-group meeting (G8), before group session 1."""
    return resource(await service.pre_group_meeting(db, principal, group_id, member_id, body.held_on), status=201)


@router.post("/{group_id}/sessions", status_code=201, response_model=GroupSessionPublic, responses=RULES,
             dependencies=GROUP)
async def record_group_session(group_id: str, body: GroupSessionCreate, db: Db, principal: ClinicalWriter) -> JSON:
    """Record a group session once, with each member's attendance (G3-G5); absent members count as missed."""
    session = await service.record_session(db, principal, group_id, body.model_dump())
    return JSON(session, status_code=201, headers={"Location": f"/v1/groups/{group_id}/sessions/{session['id']}"})


@router.get("/{group_id}/sessions", response_model=list[GroupSessionPublic], responses=errors(*AUTH, 404),
            dependencies=GROUP)
async def list_group_sessions(group_id: str, db: Db, principal: ClinicalReader) -> JSON:
    """The group's sessions in order, each with every member's attendance."""
    await repository.get(db, principal, group_id)
    return JSON(await repository.sessions(db, group_id))



@router.get("/{group_id}/outcomes", response_model=GroupOutcomes, responses=errors(*AUTH, 404), dependencies=GROUP)
async def get_group_outcomes(group_id: str, request: Request, db: Db, principal: ClinicalReader) -> JSON:
    """Per member outcomes (a pseudonym for a member whose course the caller cannot read) and the group's counts:
    members, completers, attendance rate, response and remission rates per instrument."""
    sign = request.app.state.secrets.sign
    audit.note(resource_type="outcome")
    return JSON(await service.outcomes(db, principal, group_id, lambda member_id: "m_" + sign(f"group-member:{member_id}".encode())[:24]))
