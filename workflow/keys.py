"""Every Redis key name Xinbao uses, in one place; a deal's keys share the hash tag {deal id}."""

from __future__ import annotations

P = "xb:"


def deal(deal_id: str) -> str:
    return f"{P}deal:{{{deal_id}}}"


def events(deal_id: str) -> str:
    return f"{P}deal:{{{deal_id}}}:events"


def receivable(uscc: str, buyer_code: str, invoice: str) -> str:
    """The live-deal lock of one receivable (exporter + buyer + invoice number)."""
    return f"{P}recv:{uscc}:{buyer_code}:{invoice}"


def bill_of_lading(number_key: str) -> str:
    """The live-deal lock of one bill of lading (``identifiers.bill_of_lading_key`` form),
    whoever the exporter: the same goods may be financed once."""
    return f"{P}doc:bl:{number_key}"


def customs_declaration(number: str) -> str:
    """The live-deal lock of one customs export declaration (报关单号), whoever the exporter."""
    return f"{P}doc:cd:{number}"


def idempotency(uscc: str, key: str) -> str:
    return f"{P}idem:{uscc}:{key}"


def exposure_reservations(exposure: str) -> str:
    """Hash deal id -> cents reserved on one buyer exposure (policy, buyer, currency)."""
    return f"{P}exposure:{{{exposure}}}:reservations"


def exposure_reserved_total(exposure: str) -> str:
    """Integer cents reserved or used on one buyer exposure: the sum of its reservations."""
    return f"{P}exposure:{{{exposure}}}:reserved"


# Indexes (sorted sets of deal ids).
def by_exporter(uscc: str) -> str:
    return f"{P}idx:exporter:{uscc}"


def by_bank(bank_id: str) -> str:
    """Every deal ever offered to the bank, scored by the time it was offered."""
    return f"{P}idx:bank:{bank_id}"


def bank_state(bank_id: str, state: str) -> str:
    """The deals a bank holds (or last held) in one state, scored by when they got there:
    the desk's filter by state."""
    return f"{P}idx:bank:{bank_id}:state:{state}"


def bank_missed(bank_id: str) -> str:
    """The deals whose decision deadline the bank let pass, scored by that deadline."""
    return f"{P}idx:bank:{bank_id}:missed"


def portfolio(bank_id: str) -> str:
    """Hash of the bank's portfolio figures, in cents or counts, kept by every transition:
    ``outstanding:{ccy}``, ``outstanding:{ccy}:buyer:{code}``, ``outstanding:{ccy}:country:{cc}``,
    ``overdue:{ccy}``, ``indemnity:{ccy}``, ``first_time_borrowers``, ``deferred:{ccy}`` and
    ``deferred_deals`` (open advances deferred at least once), ``claimed:{ccy}`` (losses
    claimed and awaiting the insurer)."""
    return f"{P}portfolio:{bank_id}"


def portfolio_arrears(bank_id: str) -> str:
    """Hash of the bank's overdue advances by currency and due date: ``{ccy}|{due date}`` ->
    their overdue principal in cents, ``{ccy}|{due date}|n`` -> how many; the arrears buckets
    are read from it as of any day, without a deal."""
    return f"{P}portfolio:{bank_id}:arrears"


def portfolio_borrowers(bank_id: str) -> str:
    """Hash: exporter USCC -> its open advances at the bank (HLEN: borrowers now)."""
    return f"{P}portfolio:{bank_id}:borrowers"


def borrowers_ever(bank_id: str) -> str:
    """Set of every exporter the bank ever paid an advance to (its first-time borrowers)."""
    return f"{P}portfolio:{bank_id}:borrowers-ever"


def bank_queue(bank_id: str) -> str:
    """Deals pending the bank's decision, scored by decision deadline."""
    return f"{P}idx:bank:{bank_id}:pending"


def bank_feed(bank_id: str) -> str:
    """Stream of the events of the bank's deals, in the order they happened (workflow/feed.py):
    fields ``deal`` and ``event`` (the event's JSON without its field changes)."""
    return f"{P}feed:bank:{bank_id}"


def bank_feed_trimmed(bank_id: str) -> str:
    """The id of the newest entry retention has removed from the bank's feed (absent while
    none was): a cursor before it has missed events."""
    return f"{P}feed:bank:{bank_id}:trimmed"


def awaiting_check(bank_id: str) -> str:
    """Deals pending at the bank with a first approval awaiting a checker, by deadline."""
    return f"{P}idx:bank:{bank_id}:awaiting-check"


def first_approvals_by(bank_id: str, officer: str) -> str:
    """The deals one officer approved first that still await a checker, by deadline."""
    return f"{P}idx:bank:{bank_id}:first-approved-by:{officer}"


def by_state(state: str) -> str:
    """Deals in one non-terminal state, scored by when their next step is due."""
    return f"{P}idx:state:{state}"


def deals_ended() -> str:
    """Hash: terminal state -> how many deals ever ended in it (kept by the store with each
    transition; a terminal state is never left, so it is also how many are in it now)."""
    return f"{P}stats:ended"


def ready() -> str:
    """Deals just submitted, in order, for the workers' batch drain (a fast path: the
    stranded-deal sweep still owns any deal that falls out of it)."""
    return f"{P}queue:ready"


def drain_scheduled() -> str:
    """Set while a drain task is queued, so a burst of submissions publishes one task."""
    return f"{P}queue:drain-scheduled"


def approval_lapses() -> str:
    """Approved deals not yet disbursed, scored by when their approval lapses."""
    return f"{P}idx:approval-lapses"


def due_dates() -> str:
    """Open advances, scored by when their next servicing event is due (overdue, then the
    insurer's notice and claim deadlines): the arrears sweep's schedule."""
    return f"{P}idx:due-dates"


def deadlines() -> str:
    """Deals pending a bank, scored by the decision deadline (epoch seconds)."""
    return f"{P}sched:bank-deadlines"


# Reference data.
def policy(policy_no: str) -> str:
    return f"{P}ref:policy:{policy_no}"


def limit(limit_id: str) -> str:
    return f"{P}ref:limit:{limit_id}"


def limits_for(policy_no: str, buyer_code: str) -> str:
    return f"{P}ref:limits:{policy_no}:{buyer_code}"


def declaration(policy_no: str, buyer_code: str, invoice: str) -> str:
    return f"{P}ref:decl:{policy_no}:{buyer_code}:{invoice}"


def overdues(policy_no: str, buyer_code: str) -> str:
    return f"{P}ref:overdue:{policy_no}:{buyer_code}"


def customs_records() -> str:
    """Hash: customs declaration number -> JSON customs export record (the customs feed)."""
    return f"{P}ref:customs"


def customs_feed() -> str:
    """Hash describing the customs feed's imports (last import time, file, counts); its
    existence means the feed has been imported at least once."""
    return f"{P}ref:customs:feed"


def whitelists() -> str:
    return f"{P}ref:whitelists"


def whitelist(programme: str) -> str:
    return f"{P}ref:whitelist:{programme}"


def whitelist_members(programme: str) -> str:
    return f"{P}ref:whitelist:{programme}:members"


def imported_whitelists() -> str:
    """Set of the programmes `xinbao whitelist import` wrote (a reference load leaves them)."""
    return f"{P}ref:whitelists:imported"


def whitelist_staging(token: str) -> str:
    """An import's new member set before it is renamed over the programme's (expires if the
    import dies first); "whitelist-staging:" is no programme key's prefix."""
    return f"{P}ref:whitelist-staging:{token}"


def banks() -> str:
    return f"{P}ref:banks"


def bank(bank_id: str) -> str:
    return f"{P}ref:bank:{bank_id}"


def exporter(uscc: str) -> str:
    return f"{P}ref:exporter:{uscc}"


def token(digest: str) -> str:
    return f"{P}token:{digest}"


def replica_ack_probe() -> str:
    """A counter each replica-acknowledged API write bumps, so the WAIT that follows on the
    same connection covers every write the primary had taken by then (workflow/replication)."""
    return f"{P}replica-ack-probe"


# Registries of what the last load wrote, per section, so a reload can remove what its file no
# longer names without scanning keys (banks() and whitelists() above serve banks and whitelists).
def policies() -> str:
    """Set of loaded policy numbers."""
    return f"{P}ref:policies"


def limits() -> str:
    """Set of loaded limit ids."""
    return f"{P}ref:limits"


def policies_by_exporter() -> str:
    """Hash: exporter USCC -> JSON list of its policy numbers (its application form's)."""
    return f"{P}ref:policies-by-exporter"


def limits_by_policy() -> str:
    """Hash: policy number -> JSON list of the limit ids loaded under it."""
    return f"{P}ref:limits-by-policy"


def limit_lookups() -> str:
    """Set of the (policy, buyer) lookup-set key names the loaded limits filled."""
    return f"{P}ref:limit-lookups"


def declarations() -> str:
    """Set of the loaded declarations' key names."""
    return f"{P}ref:declarations"


def overdue_keys() -> str:
    """Set of the loaded overdue hashes' key names."""
    return f"{P}ref:overdue-keys"


def exporters() -> str:
    """Set of loaded exporter USCCs."""
    return f"{P}ref:exporters"


def reference_version() -> str:
    """A fresh random token written with every change of reference data (a load, a whitelist
    import): processes that cache reference data read it with their work and drop their cache
    when it differs (workflow/reference/cache.py)."""
    return f"{P}ref:version"


def token_registry() -> str:
    """Hash digest -> {role, subject, source} of every live token."""
    return f"{P}tokens"


def tokens_revoked() -> str:
    """Hash digest -> {role, subject, revoked_at}: a revoked token is never stored again."""
    return f"{P}tokens:revoked"


def token_added() -> str:
    """Hash digest -> when the token was first added (kept when a reload writes it again)."""
    return f"{P}tokens:added"


# Users of the web pages (officers and exporter users).
def user(username: str) -> str:
    """Hash of one user: profile, argon2 hash, and operator state (disabled, lockout)."""
    return f"{P}user:{username}"


def login_session(session_key: str) -> str:
    """One signed-in page session (its username), expiring after the idle limit; deleting it
    signs that session out, whoever still holds a copy of its cookie."""
    return f"{P}login-session:{session_key}"


def users() -> str:
    """Set of every username, so users can be listed without scanning keys."""
    return f"{P}users"


def file_users() -> str:
    """Set of the usernames the last reference load wrote (the file's users section)."""
    return f"{P}ref:users"


def insurer_callback(kind: str, callback_id: str) -> str:
    """Set when an insurer callback was first taken (it expires after a week): a callback
    delivered twice, or late, changes nothing twice."""
    return f"{P}insurer-callback:{kind}:{callback_id}"


def insurer_outbox() -> str:
    """List of the buyer-limit use changes not yet reported to the insurer, oldest first
    (JSON; written with each transition that changes a deal's principal outstanding)."""
    return f"{P}insurer-outbox"


def worker_heartbeats() -> str:
    """Sorted set: Celery worker hostname -> when it last ran beat's sweep (epoch seconds)."""
    return f"{P}heartbeat:workers"


def beat_heartbeat() -> str:
    """When beat last sent a sweep (epoch seconds, as text)."""
    return f"{P}heartbeat:beat"


# Bank webhooks: every key of one webhook shares the hash tag {webhook id}, so the Lua steps
# that touch several of them stay on one slot.
def webhooks() -> str:
    """Sorted set: webhook id -> when it was added (epoch seconds)."""
    return f"{P}webhooks"


def webhook(webhook_id: str) -> str:
    """Hash: the webhook's bank, URL, secret, created_at, its cursor in the bank's feed, its
    delivery sequence, consecutive failures and the time it is paused until."""
    return f"{P}webhook:{{{webhook_id}}}"


def webhook_stats(webhook_id: str) -> str:
    """Hash of counters (delivered, failed_attempts, dead, gaps) and last-outcome times."""
    return f"{P}webhook:{{{webhook_id}}}:stats"


def webhook_order(webhook_id: str) -> str:
    """Sorted set: pending event id -> its place in the webhook's sequence (feed order)."""
    return f"{P}webhook:{{{webhook_id}}}:order"


def webhook_due(webhook_id: str) -> str:
    """Sorted set: pending event id -> when it may next be tried (epoch seconds)."""
    return f"{P}webhook:{{{webhook_id}}}:due"


def webhook_deliveries(webhook_id: str) -> str:
    """Hash: pending event id -> JSON {body, cursor, created_at} (the exact body to sign)."""
    return f"{P}webhook:{{{webhook_id}}}:deliveries"


def webhook_attempts(webhook_id: str) -> str:
    """Hash: pending event id -> failed attempts so far."""
    return f"{P}webhook:{{{webhook_id}}}:attempts"


def webhook_history(webhook_id: str) -> str:
    """List of the latest delivery attempts (JSON), newest first, capped."""
    return f"{P}webhook:{{{webhook_id}}}:history"


def webhook_lease(webhook_id: str) -> str:
    """The token of the one delivery task allowed to post for this webhook (expires)."""
    return f"{P}webhook:{{{webhook_id}}}:lease"
