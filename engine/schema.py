"""The database tables carepath keeps. Alembic migrations in engine/migrations create them.

Text columns hold JSON written by carepath itself (canonical where it is hashed), so the
same bytes come back on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
    literal_column,
    text,
)

#: the largest id a row can have (SQLite INTEGER, PostgreSQL bigint): a number past it names no row, and
#: PostgreSQL refuses to compare a bigint with it ("bigint out of range")
MAX_ROW_ID = 2**63 - 1

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Id = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrement needs INTEGER PRIMARY KEY

settings = Table(
    "settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

definition_files = Table(
    "definition_files",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("content", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

deployments = Table(
    "deployments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("deployed_at", DateTime(timezone=True), nullable=False),
    Column("deployed_by", String(255), nullable=False),
    Column("source", Text, nullable=False),
    # who wrote the change, who approved it (four eyes) and why; empty for deployments before 0005
    Column("change_note", Text, nullable=True),
    Column("author", String(255), nullable=True),
    Column("approver", String(255), nullable=True),
)

process_versions = Table(
    "process_versions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("process_id", String(255), nullable=False),
    Column("version", Integer, nullable=False),
    Column("name", String(255), nullable=False),
    Column("content_sha256", String(64), nullable=False),
    Column("deployment_id", ForeignKey("deployments.id"), nullable=False),
    # JSON list of definition_files ids needed to build the spec (its own file, called processes, decisions)
    Column("file_ids", Text, nullable=False),
    Column("main_file", String(255), nullable=False),
    # JSON: forms, teams, handlers and timers of the process, as read at deployment
    Column("info", Text, nullable=False),
    Column("deployed_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("process_id", "version"),
)

process_drafts = Table(  # a process owner's change, not yet live (engine/drafts.py); never runs
    "process_drafts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("process_id", String(255), nullable=False),
    Column("base_version_id", ForeignKey("process_versions.id"), nullable=True),  # None: a new process
    Column("author", String(255), nullable=False),
    Column("editors", Text, nullable=False),  # JSON list: everyone who saved it (none of them may approve it)
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(255), nullable=False),
    Column("revision", Integer, nullable=False),  # +1 per save; a save names the revision it started from
    Column("status", String(16), nullable=False),  # draft | submitted | refused | deployed | withdrawn
    Column("change_note", Text, nullable=False),
    Column("files", Text, nullable=False),  # JSON {file name: XML text}
    Column("example", Text, nullable=True),  # JSON {"start_data": {...}, "answers": {...}}
    Column("rebase_changes", Text, nullable=True),  # JSON: what changed between the old and new base
    Column("submitted_at", DateTime(timezone=True), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("decided_by", String(255), nullable=True),
    Column("decision_note", Text, nullable=True),  # the reviewer's reason when refused
    Column("deployed_version_id", ForeignKey("process_versions.id"), nullable=True),
    Index("ix_process_drafts_process_id_status", "process_id", "status"),
)

cases = Table(
    "cases",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("reference", String(64), nullable=False, unique=True),
    Column("title", String(255), nullable=False),
    Column("data", Text, nullable=False),  # person details, told once and reused by every process
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_cases_created_at", "created_at"),  # the auditors' search by date range
)

instances = Table(
    "instances",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", ForeignKey("cases.id"), nullable=False, index=True),
    Column("process_version_id", ForeignKey("process_versions.id"), nullable=False),
    Column("process_id", String(255), nullable=False),
    Column("parent_instance_id", ForeignKey("instances.id"), nullable=True),
    Column("status", String(16), nullable=False),  # running | waiting | error | completed | cancelled
    Column("version", Integer, nullable=False),  # optimistic concurrency
    Column("state_format", Integer, nullable=False),
    Column("state", Text, nullable=True),  # serialized workflow; dropped once completed
    Column("data", Text, nullable=True),  # final data once completed
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    # the few instances paused now (engine/suspension.py), read by every inbox page (api/tasks.py
    # suspended_instances) without reading the pauses of years (migration 0031)
    Index("ix_instances_suspended", "id", postgresql_where=text("status = 'suspended'"),
          sqlite_where=text("status = 'suspended'")),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(36), primary_key=True),  # the workflow task's uuid
    Column("instance_id", ForeignKey("instances.id"), nullable=False, index=True),
    Column("case_id", ForeignKey("cases.id"), nullable=False, index=True),
    Column("process_id", String(255), nullable=False),
    Column("element_id", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("form", String(255), nullable=True),
    Column("team", String(255), nullable=True),
    Column("candidate_groups", Text, nullable=False),
    Column("lane", String(255), nullable=True),
    Column("assignee", String(255), nullable=True),
    Column("owner", String(255), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=True, index=True),
    # the diagram's follow-up date (camunda:followUpDate, zeebe:taskSchedule followUpDate): when to look at
    # the task again; the inbox's "follow-up due" filter reads it from its index (0016)
    Column("follow_up_at", DateTime(timezone=True), nullable=True, index=True),
    # JSON list of the people the diagram offers the task to (candidate users), or NULL (0016)
    Column("candidate_users", Text, nullable=True),
    Column("draft", Text, nullable=True),
    Column("revision", Integer, nullable=False, default=0),
    # a team's queue and a person's tasks in due order (soonest first, no due date last) read from
    # the index a page at a time (api/tasks.py)
    Index("ix_tasks_team_due", "team", "due_at", "created_at", "id"),
    Index("ix_tasks_assignee_due", "assignee", "due_at", "created_at", "id"),
    # the few tasks offered to named people: a person's inbox reads them from this small partial index (0016)
    Index("ix_tasks_candidate_users", "candidate_users", postgresql_where=text("candidate_users IS NOT NULL"),
          sqlite_where=text("candidate_users IS NOT NULL")),
)

timers = Table(
    "timers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("instance_id", ForeignKey("instances.id"), nullable=False, index=True),
    Column("case_id", ForeignKey("cases.id"), nullable=False),
    Column("task_id", String(36), nullable=False),
    Column("element_id", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("attached_to", String(255), nullable=True),
    Column("due_at", DateTime(timezone=True), nullable=False, index=True),
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("instance_id", ForeignKey("instances.id"), nullable=False, index=True),
    Column("case_id", ForeignKey("cases.id"), nullable=False),
    Column("task_id", String(36), nullable=True),
    Column("element_id", String(255), nullable=True),
    Column("handler", String(255), nullable=True),
    Column("message", Text, nullable=False),
    Column("inputs", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("resolved_by", String(255), nullable=True),
)

documents = Table(
    "documents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", ForeignKey("cases.id"), nullable=False, index=True),
    Column("instance_id", ForeignKey("instances.id"), nullable=False),
    Column("element_id", String(255), nullable=False),
    Column("handler", String(255), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("title", String(255), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

chains = Table(
    "chains",
    metadata,
    Column("chain", String(64), primary_key=True),  # "case:<id>" or "system"
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("chain", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("case_id", ForeignKey("cases.id"), nullable=True),
    Column("instance_id", BigInteger, nullable=True),
    Column("type", String(64), nullable=False),
    Column("at", String(40), nullable=False),  # ISO 8601 UTC, exactly as hashed
    Column("actor", String(255), nullable=False),
    Column("data", Text, nullable=False),  # canonical JSON, exactly as hashed
    Column("step", BigInteger, nullable=False),  # seq of the first event of the engine step that wrote it
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("chain", "seq"),
    Index("ix_events_case_id_id", "case_id", "id"),
    Index("ix_events_type_case_id", "type", "case_id"),  # by type (and, read from it alone, the case)
    Index("ix_events_actor_case_id", "actor", "case_id"),  # the auditors' search: who acted
    Index("ix_events_at", "at"),  # the auditors' search: events within a date range
)


# ---------------------------------------------------------------- the people who use it (api/)
# Users, sign-in sessions, who opened which case record, restricted cases and case notes. They
# share the database and the migrations with the engine so one `carepath init` creates everything.

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", String(255), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("teams", JSON, nullable=False),
    Column("failed_attempts", Integer, nullable=False, default=0),
    Column("locked_until", DateTime(timezone=True), nullable=True),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # second factor (migration 0022, api/mfa.py): the TOTP secret (encrypted when a key is configured), switched
    # on only once a code from it was given, the last time step accepted (no replay), recovery codes' SHA-256s
    Column("mfa_secret", Text, nullable=True),
    Column("mfa_enabled", Boolean, nullable=False, default=False, server_default=false()),
    Column("mfa_last_step", BigInteger, nullable=True),
    Column("mfa_recovery", JSON, nullable=True),
    # a password someone else chose (an administrator: migration 0025): its owner must choose their own first
    Column("password_change_due", Boolean, nullable=False, default=False, server_default=false()),
)

mfa_challenges = Table(  # a password checked, the code not yet given (api/auth.py AuthStore.sign_in)
    "mfa_challenges",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", Id, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("failures", Integer, nullable=False),
    Column("address", String(64), nullable=False),
)

sign_in_throttle = Table(  # failed sign-ins per (account, address) and per address, with back-off (api/auth.py)
    "sign_in_throttle",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_failure_at", DateTime(timezone=True), nullable=False),
    Column("blocked_until", DateTime(timezone=True), nullable=True),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", Id, nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    # when it was last used (migration 0025; written at most once a minute): unused for too long, it ends
    Column("last_used_at", DateTime(timezone=True), nullable=True),
)

case_access_log = Table(  # append-only (database triggers)
    "case_access_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", BigInteger, nullable=False, index=True),
    Column("user", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("action", String(32), nullable=False),
    Column("page", String(200), nullable=True),  # the page or API route it happened from
    Column("reason", Text, nullable=True),  # why (e.g. an evidence export's stated reason)
    Column("outcome", String(16), nullable=True),  # allowed | refused (empty before revision 0006)
    Index("ix_case_access_log_user_id", "user", "id"),
    Index("ix_case_access_log_at", "at"),
)

restricted_cases = Table(
    "restricted_cases",
    metadata,
    Column("case_id", BigInteger, primary_key=True, autoincrement=False),
    Column("allowed", JSON, nullable=False),  # usernames who may open the case
)

# A change to an account that waits for a second administrator (api/admin.py, docs/security.md "Privileged access"):
# a role or team that would open case records added to one's own account (0018), and (0024) a new account with the
# administrator role or a role that opens case records, such a role given to someone else, a new password or a
# second-factor reset for an account holding one. It waits here until another administrator approves or refuses
# it. Every step is also in the system history.
role_requests = Table(
    "role_requests",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, index=True),  # the account to change
    Column("requested_by", String(64), nullable=False),
    # what waits (migration 0024): roles (and teams), a new account, a new password, a second-factor reset
    Column("kind", String(16), nullable=False, server_default="roles"),
    Column("roles", JSON, nullable=False),  # the roles asked for (the whole list)
    Column("teams", JSON, nullable=False),  # the teams asked for (the whole list)
    Column("added", JSON, nullable=False),  # what it adds that opens cases (roles, "team:<name>"): approval adds these
    Column("status", String(16), nullable=False),  # pending, approved, refused
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("decided_by", String(64), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("decision_reason", String(500), nullable=True),
    Column("password_hash", String(255), nullable=True),  # a new password's argon2 hash, emptied once decided
)

# break-glass access (api/break_glass.py, docs/security.md "Break-glass access", migration 0019): a casework user not
# named on a restricted case reads it for a limited time, with a reason; append-only (database triggers)
break_glass = Table(
    "break_glass",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", ForeignKey("cases.id"), nullable=False, index=True),
    Column("username", String(64), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),  # the engine's clock
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_break_glass_username_case_id", "username", "case_id"),
)

# a break-glass use reviewed by an administrator (one review each; append-only)
break_glass_reviews = Table(
    "break_glass_reviews",
    metadata,
    Column("grant_id", ForeignKey("break_glass.id"), primary_key=True, autoincrement=False),
    Column("reviewer", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("note", String(500), nullable=False),
)

# signing in through the council's identity provider (api/oidc.py, docs/security.md, 0020): an account linked to the
# provider's person by issuer and `sub` (never by e-mail), one identity per account
user_identities = Table(
    "user_identities",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("issuer", String(255), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("user_id", Id, nullable=False, index=True, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_sign_in_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("issuer", "subject"),
)

# a sign-in under way at the identity provider: the browser holds a random handle (cookie), this row its SHA-256,
# the state, nonce and PKCE verifier; used once, expires after a few minutes of the engine's clock
oidc_sign_ins = Table(
    "oidc_sign_ins",
    metadata,
    Column("handle_hash", String(64), primary_key=True),
    Column("state", String(64), nullable=False),
    Column("nonce", String(64), nullable=False),
    Column("code_verifier", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)

case_notes = Table(  # append-only (database triggers): a correction is a new note
    "case_notes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", ForeignKey("cases.id"), nullable=False, index=True),
    Column("author", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(32), nullable=False),  # note | phone_call | visit | correction ...
    Column("text", Text, nullable=False),
    Column("corrects", BigInteger, nullable=True),  # id of the note this one corrects
)

# ---------------------------------------------------------------- the people cases are about (handlers/people.py)
# A copy of each case's person, normalised for the front door's search (api/people.py), rewritten
# in the same transaction as every change of the case's details. Names are folded (accents dropped,
# case folded); one row per name part with its sound-alike keys.

people = Table(
    "people",
    metadata,
    Column("case_id", ForeignKey("cases.id"), primary_key=True, autoincrement=False),
    Column("name", String(255), nullable=False),  # as recorded (Unicode NFC)
    Column("given_names", String(255), nullable=False),  # folded, space-separated
    Column("family_name", String(255), nullable=False),  # folded
    Column("date_of_birth", String(10), nullable=True, index=True),  # ISO
    Column("postcode", String(8), nullable=True),  # upper case, no spaces
    Column("nhs_number", String(10), nullable=True, index=True),  # 10 digits
    # the keys of every name part, space-separated (handlers/people.py `search_keys`, migration 0008):
    # PostgreSQL finds the people with a key of each word typed through a GIN index on
    # string_to_array(search_keys, ' '), made by the migration (an expression index, PostgreSQL only)
    Column("search_keys", Text, nullable=True),
    # a postcode's first part ("NB4") is a prefix: LIKE 'NB4%' reads the index on PostgreSQL too
    Index("ix_people_postcode", "postcode", postgresql_ops={"postcode": "varchar_pattern_ops"}),
)
Index("ix_people_search_keys", func.string_to_array(people.c.search_keys, literal_column("' '")),
      postgresql_using="gin").ddl_if(dialect="postgresql")

person_name_keys = Table(
    "person_name_keys",
    metadata,
    Column("case_id", ForeignKey("cases.id"), primary_key=True, autoincrement=False),
    Column("position", Integer, primary_key=True, autoincrement=False),  # 0.. given names, then family
    Column("part", String(8), nullable=False),  # given | family
    Column("word", String(60), nullable=False),  # folded
    Column("metaphone", String(16), nullable=False),
    Column("nysiis", String(16), nullable=False),
    Index("ix_person_name_keys_metaphone_case_id", "metaphone", "case_id"),
    Index("ix_person_name_keys_nysiis_case_id", "nysiis", "case_id"),
    Index("ix_person_name_keys_word_case_id", "word", "case_id", postgresql_ops={"word": "varchar_pattern_ops"}),
)

# One row per slip key of a name part of four letters or more (migration 0008): the strings made by
# deleting one of its first five letters, so a name typed with one slip in its first letters ("Lohnson")
# shares a key with the name ("Johnson") even when the sound keys differ. Filled on SQLite only:
# PostgreSQL reads the same keys from people.search_keys.
person_name_slips = Table(
    "person_name_slips",
    metadata,
    Column("case_id", ForeignKey("cases.id"), primary_key=True, autoincrement=False),
    Column("position", Integer, primary_key=True, autoincrement=False),  # the part's position in person_name_keys
    Column("slip", String(8), primary_key=True),
    Index("ix_person_name_slips_slip_case_id", "slip", "case_id"),
)

# ---------------------------------------------------------------- letters sent (handlers/letter_sending.py, 0009)
# One row per letter to be sent, inserted in the transaction that files the letter (`documents`): a letter
# is queued exactly once (document_id is unique) and never without its document. The sender (a background
# job) claims due rows, sends through the council's provider (GOV.UK Notify) with `reference` so a send
# whose outcome was unknown is looked up, not repeated, and records the provider's status as it changes.
letter_sends = Table(
    "letter_sends",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("document_id", ForeignKey("documents.id"), nullable=False, unique=True),
    Column("case_id", ForeignKey("cases.id"), nullable=False, index=True),
    Column("channel", String(16), nullable=False),  # post | email
    Column("reference", String(64), nullable=False, unique=True),  # given to the provider with every send
    # queued | sending | retry | sent | delivered | failed (what the person's worker reads, in words, on the case)
    Column("status", String(16), nullable=False),
    Column("provider_status", String(32), nullable=True),  # the provider's own word: received, delivered...
    Column("provider_id", String(64), nullable=True),  # the provider's id for the notification
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", DateTime(timezone=True), nullable=True),  # when to send (or ask for the status) next
    Column("last_error", Text, nullable=True),  # the last failure, in words (no personal data)
    Column("pdf", LargeBinary, nullable=True),  # the PDF exactly as sent by post (or rendered for sending)
    Column("pdf_sha256", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),  # when the provider accepted it
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_letter_sends_status_next_at", "status", "next_at"),
)


# ---------------------------------------------------------------- measures' per-case facts (handlers/measures.py, 0010)
# What the measures read from one case, worked out from its history (docs/measures.md, "Speed"): kept so that a
# server's first measures page reads one row per case instead of every history. A row is good while no event of
# its case has an id above `last_event_id` and its `basis` (the code's facts version and the teams of the deployed
# tasks) is the current one; any process that finds a stale row works the case out again and writes it, and a
# write never replaces a row made from a later event (handlers.measures.load_population). Derived, never
# authoritative: deleting every row only makes the next page slow.
measure_facts = Table(
    "measure_facts",
    metadata,
    Column("case_id", ForeignKey("cases.id"), primary_key=True),
    Column("last_event_id", Id, nullable=False),  # the case's latest event the facts were worked out from (0: none)
    Column("basis", String(64), nullable=False),
    Column("facts", Text, nullable=False),  # JSON (handlers.measures.case_facts)
)

# The measures page's figures for one period and team, with the mark they were worked out at (handlers/
# measures_pages.py, 0017): a new server process shows them while the mark and the basis are still the database's
# current ones, instead of reading every case's facts. Derived, never authoritative: deleting them only makes the
# next first page slow.
measure_pages = Table(
    "measure_pages",
    metadata,
    Column("key", String(80), primary_key=True),  # "{from}:{to}:{team}"
    Column("mark", String(200), nullable=False),  # the events' mark the figures were worked out at (JSON)
    Column("basis", String(64), nullable=False),
    Column("figures", Text, nullable=False),  # JSON (handlers.measures_pages.page_payload)
)

# ---------------------------------------------------------------- decision versions (engine/definitions.py, 0013)
# Every deployed version of a DMN decision, numbered per decision id, whether deployed on its own or with a process.
# A business rule task evaluates the latest version of its decision unless bound to the one deployed with its
# process (docs/diagram-attributes.md, "Business rule tasks and decisions").
decision_versions = Table(
    "decision_versions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("decision_id", String(255), nullable=False),
    Column("version", Integer, nullable=False),
    Column("name", String(255), nullable=False),
    Column("file_id", ForeignKey("definition_files.id"), nullable=False),  # the .dmn file holding it
    Column("content_sha256", String(64), nullable=False),  # that file's content: the same again is no new version
    Column("required", Text, nullable=False),  # JSON list of the decision ids it requires
    Column("version_tag", String(255), nullable=True),  # the decision's camunda:versionTag (0016)
    Column("deployment_id", ForeignKey("deployments.id"), nullable=False),
    Column("deployed_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("decision_id", "version"),
)

# Messages delivered to a case by name (engine/messages.py). `key` is the idempotency key: the database
# refuses a second row with it, so a message sent twice — by a retrying client, or by two server or worker
# processes at once — is applied once. A message no process waits for yet is kept (`status` "kept") until
# `expires_at` and delivered by the first step that leaves a receiver waiting; then "delivered".
messages = Table(
    "messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(255), nullable=False, unique=True),
    Column("name", String(255), nullable=False),
    Column("case_id", ForeignKey("cases.id"), nullable=False),
    Column("correlation", Text, nullable=False),  # JSON object: key -> value the receiver's data must have
    Column("data", Text, nullable=False),  # JSON object: the message's payload
    Column("status", String(16), nullable=False),  # kept | delivered
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Column("instance_id", ForeignKey("instances.id"), nullable=True),
    Column("actor", String(255), nullable=False),
    Index("ix_messages_case_id_status_name", "case_id", "status", "name"),
)

# ------------------------------------------------------- returns prepared in the background (api/cld_returns.py, 0015)
# A statutory return takes tens of seconds for a county year, so its page prepares it in the background and keeps it
# here, where every server process on the database finds it: one row per return, period and version (what the
# return was made from, api.cld_returns.version). `status` is `preparing` (claimed by one process since
# `started_at`), `ready` (`body`: the return's rows, problems, withheld rows and findings, zlib-compressed JSON) or
# `failed` (`failure`: the error's type, never its message). Derived, never authoritative: deleting the rows only
# makes the next page prepare the return again. The page keeps the newest few (api.cld_returns.KEEP).
prepared_returns = Table(
    "prepared_returns",
    metadata,
    Column("kind", String(32), primary_key=True),  # "cld"
    Column("period_start", String(10), primary_key=True),  # ISO dates
    Column("period_end", String(10), primary_key=True),
    Column("version", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("body", LargeBinary, nullable=True),
    Column("failure", String(200), nullable=True),
)

# ---------------------------------------------------------------- retention reviews (handlers/retention.py, 0021)
# One row per case the retention job found due for erasure on the engine's clock: `status` is `due` (waiting for an
# administrator's approval on /admin/retention), `held` (a legal hold or other reason, `note`: why; the job does not
# list it again until released) or `erased` (done: who approved it and when). The erasure itself is in the case's
# history (`case.erased`); this table is the work list.
retention_reviews = Table(
    "retention_reviews",
    metadata,
    Column("case_id", BigInteger, primary_key=True, autoincrement=False),
    Column("rule", String(64), nullable=False),  # the retention rule's id (processes/config/retention.json)
    Column("closed_at", String(40), nullable=False),  # ISO 8601, as the case record holds it
    Column("due_on", String(10), nullable=False),  # ISO date: the first day it may be erased
    Column("status", String(16), nullable=False, index=True),  # due | held | erased
    Column("listed_at", DateTime(timezone=True), nullable=False),
    Column("decided_by", String(64), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("note", String(500), nullable=True),
)

# ------------------------------------------------------- what-if simulations started from the pages (0023)
# One row per simulation a process owner started from a draft's review page (a comparison of the draft with the live
# version) or the processes page (one run of the live processes, `draft_id` NULL): what was asked, who asked and when,
# how far it is, and its result (JSON) or why it could not be run. The server process that runs it in a background
# thread writes its progress and, every `HEARTBEAT_S`, that it is still alive (`heartbeat_at`); a `running` row whose
# heartbeat is older than `STALE` is taken as stopped with its server (api/simulation_pages.py). At most one row is
# `running` (the partial unique index): one simulation at a time across every server process on the database.
# Derived, never authoritative: every row is synthetic output (no case is read); deleting one only means running the
# simulation again. The pages keep the newest few finished ones per draft (api.simulation_pages.KEEP).
simulation_runs = Table(
    "simulation_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=False),  # a random 9-digit number: the page's address
    Column("run_key", String(64), nullable=False, index=True),  # SHA-256 of what was asked: the same again reuses it
    Column("draft_id", BigInteger, nullable=True, index=True),  # NULL: one run of the live processes
    Column("revision", Integer, nullable=True),  # the draft's revision simulated
    Column("process_id", String(255), nullable=False),  # the draft's process ("" for a run of the live processes)
    Column("days", Integer, nullable=False),
    Column("seeds", Text, nullable=False),  # JSON list of the seeds
    Column("scenario", Text, nullable=False),  # the scenario file's path
    Column("live", Text, nullable=False),  # JSON [[process id, version], ...]: the deployed versions a single run read
    # where its runs start: "empty" (an empty caseload) or "today" (an anonymised copy of today's open cases)
    Column("starts_from", String(16), nullable=False, server_default=text("'empty'")),
    Column("started_by", String(64), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False),  # running | ready | failed
    Column("done", Integer, nullable=False),  # runs finished
    Column("total", Integer, nullable=False),  # runs in all
    Column("seconds", Float, nullable=True),  # how long it took, once finished
    Column("result", Text, nullable=True),  # JSON: the comparison's or the run's figures, once ready
    Column("error", Text, nullable=True),  # why it could not be run, in words, once failed
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),  # the last time its server said it was alive
    # JSON {"side", "seed", "since"}: the run made ahead it waits for instead of making it (0029), NULL otherwise
    Column("waiting_for", Text, nullable=True),
    Column("progress", Text, nullable=True),  # JSON {"live:1": days, ...}: how far the runs being made have come (0029)
    Index("uq_simulation_runs_running", "status", unique=True, postgresql_where=text("status = 'running'"),
          sqlite_where=text("status = 'running'")),
)

# ------------------------------------------------------- simulation runs kept for reuse (0026)
# One row per run of a simulation from an empty caseload, under the SHA-256 of everything its output depends on (the
# deployed versions it ran, the scenario, the period, the seed, the code and libraries that ran it): a comparison takes
# a run kept here instead of making it again (carepath/simulate_reuse.py). Synthetic figures only; derived, never
# authoritative: the ones used longest ago are deleted beyond a limit, and deleting any only means running it again.
simulation_outputs = Table(
    "simulation_outputs",
    metadata,
    Column("key", String(64), primary_key=True),  # SHA-256 of what the run depends on
    Column("output", Text, nullable=False),  # JSON: the run's output, as carepath.simulate.simulate returned it
    Column("made_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=False, index=True),  # made or last reused
    Column("uses", Integer, nullable=False),  # times reused
    Column("seconds", Float, nullable=True),  # how long the run took when it was made
    Column("bytes", Integer, nullable=False),  # the output's length
)

# ------------------------------------------------------- the live runs made ahead of being asked (0027)
# At most one row (`name` 'ahead'): the server process making, at the lowest priority, the runs of the deployed
# versions a comparison of a draft will need (carepath/simulate_ahead.py), what it is making ("365:2": days and
# seed), and its heartbeat; a row whose heartbeat is old is taken over by another process, so one server process of
# several on a database makes them. No personal data; derived, never authoritative.
simulation_ahead = Table(
    "simulation_ahead",
    metadata,
    Column("name", String(16), primary_key=True),
    Column("holder", String(64), nullable=False),  # a random token of the server process holding it
    Column("making", String(64), nullable=True),  # "days:seed" (a draft's: "days:seed:draft id") of the run being made
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    Column("run_key", String(64), nullable=True),  # its key (simulation_outputs), NULL between runs (0028)
    Column("awaited", String(64), nullable=True),  # the key a process owner's simulation waits for (0028)
    Column("paused_at", DateTime(timezone=True), nullable=True),  # the run paused for a simulation since (0028)
    Column("day", Integer, nullable=True),  # the whole days the run being made has simulated (0029)
)
